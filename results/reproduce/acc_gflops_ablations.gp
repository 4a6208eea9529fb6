# acc_gflops_ablations.gp — written by `focusbench plot --kind acc-gflops` from results/reproduce/curves.csv
# that CSV was written by: focusbench sweep --csv results/reproduce/curves.csv --eval tsn-4x64=results/reproduce/eval_tsn-4x64.csv --eval tsn-mbv2-4x64=results/reproduce/eval_tsn-mbv2-4x64.csv --eval tsn-4x32=results/reproduce/eval_tsn-4x32.csv --eval tsm=results/reproduce/eval_tsm.csv --eval uniadafocus=results/reproduce/eval_uniadafocus.csv --eval uniadafocus-uniform=results/reproduce/eval_uniadafocus-uniform.csv --eval uniadafocus-centre=results/reproduce/eval_uniadafocus-centre.csv --eval uniadafocus-randombox=results/reproduce/eval_uniadafocus-randombox.csv --eval uniadafocus-noexit=results/reproduce/eval_uniadafocus-noexit.csv --eval adafocusv2=results/reproduce/eval_adafocusv2.csv --eval frameexit=results/reproduce/eval_frameexit.csv --eval arnet=results/reproduce/eval_arnet.csv --eval ocsampler=results/reproduce/eval_ocsampler.csv
# Rerun from anywhere: gnuplot THIS.gp (it writes the .png and .svg of the same name next to
# itself). The data are inline (datablocks below), so this file needs nothing else.

reset
set encoding utf8
set datafile commentschars ""
outdir = ""
if (exists("ARG0") && strlen(ARG0) > 0) {
    i = strlen(ARG0)
    while (i > 0 && ARG0[i:i] ne "/") { i = i - 1 }
    if (i > 0) { outdir = ARG0[1:i] }
}

# tsn: gflops_per_video, top1
$curve1 << EOD
0.01106912 11
0.022730656000000002 9.5
0.04424672 42.25
EOD
# uniadafocus-fixed-exit: gflops_per_video, top1
$curve2 << EOD
0.023009952 10
0.02645912 17.5
0.029234656 27.250000000000004
0.032010192 30.75
0.034785728 30.25
EOD
# uniadafocus: gflops_per_video, top1
$curve3 << EOD
0.023044443680000002 10.25
0.023044443680000002 10.25
0.023044443680000002 10.25
0.023044443680000002 10.25
0.023051382520000004 10.25
0.023051382520000004 10.25
0.023065260200000003 10.25
0.023065260200000003 10.25
0.023065260200000003 10.25
0.023065260200000003 10.25
0.023065260200000003 10.25
EOD
# uniadafocus-random-exit: gflops_per_video, top1
$curve4 << EOD
0.023044443680000002 10
0.023044443680000002 10
0.023044443680000002 10.25
0.023044443680000002 10.25
0.023051382520000004 10
0.023051382520000004 10.25
0.023065260200000003 10
0.023065260200000003 10
0.023065260200000003 10
0.023065260200000003 10
0.023065260200000003 10.25
EOD
# uniadafocus-uniform-fixed-exit: gflops_per_video, top1
$curve5 << EOD
0.023009952 12.5
0.026335424000000003 18.75
0.02911096 29.25
0.031886496 31.25
0.034662032 30.75
EOD
# uniadafocus-centre-fixed-exit: gflops_per_video, top1
$curve6 << EOD
0.023009952 10
0.025909184000000002 24.25
0.02868472 35.5
0.031460256 42.5
0.034235792 44.25
EOD
# uniadafocus-randombox-fixed-exit: gflops_per_video, top1
$curve7 << EOD
0.023009952 10
0.025909184000000002 14.499999999999998
0.02868472 24
0.031460256 27.250000000000004
0.034235792 28.249999999999996
EOD
# uniadafocus-noexit: gflops_per_video, top1
$curve8 << EOD
0.034785728 30.25
EOD
# the Pareto front over the curves shown: no point costs less and is more accurate
$pareto << EOD
0.01106912 11
0.023009952 12.5
0.025909184000000002 24.25
0.02868472 35.5
0.031460256 42.5
0.034235792 44.25
EOD

set title "synthetic benchmark: Uni-AdaFocus, its ablations and the random-exit control" . "\n" . "curves.csv · AMD EPYC" font ",15"
set xlabel "GFLOPs per video (multiply-accumulates, paper convention)"
set ylabel "top-1 accuracy (%)"
set grid back lc rgb "#dddddd" lw 1
set border 3
set tics nomirror
set offsets graph 0.04, graph 0.04, graph 0.06, graph 0.06
set key outside right top box samplen 2.5 spacing 1.2
set style line 1 lc rgb "#0072B2" lw 2.5 pt 7 ps 1.5 dt 1
set style line 2 lc rgb "#D55E00" lw 2.5 pt 5 ps 1.5 dt 1
set style line 3 lc rgb "#009E73" lw 2.5 pt 9 ps 1.5 dt 1
set style line 4 lc rgb "#CC79A7" lw 2.5 pt 11 ps 1.5 dt 1
set style line 5 lc rgb "#E69F00" lw 2.5 pt 13 ps 1.5 dt 1
set style line 6 lc rgb "#56B4E9" lw 2.5 pt 15 ps 1.5 dt 1
set style line 7 lc rgb "#8C564B" lw 2.5 pt 7 ps 1.5 dt 1
set style line 8 lc rgb "#7F7F7F" lw 2.5 pt 5 ps 1.5 dt 1
set style line 100 lc rgb "#000000" lw 1.5 dt 2
set style line 101 lc rgb "#000000" lw 1.5 pt 6 ps 2.6

set terminal pngcairo size 1200,800 noenhanced font "Sans,13" background rgb "white"
set termoption noenhanced
set output outdir . "acc_gflops_ablations" . ".png"
plot $curve1 using 1:2 with linespoints ls 1 title "tsn", \
     $curve2 using 1:2 with linespoints ls 2 title "uniadafocus-fixed-exit", \
     $curve3 using 1:2 with linespoints ls 3 title "uniadafocus", \
     $curve4 using 1:2 with linespoints ls 4 title "uniadafocus-random-exit", \
     $curve5 using 1:2 with linespoints ls 5 title "uniadafocus-uniform-fixed-exit", \
     $curve6 using 1:2 with linespoints ls 6 title "uniadafocus-centre-fixed-exit", \
     $curve7 using 1:2 with linespoints ls 7 title "uniadafocus-randombox-fixed-exit", \
     $curve8 using 1:2 with linespoints ls 8 title "uniadafocus-noexit", \
     $pareto using 1:2 with steps ls 100 title "Pareto front (of the curves shown)", \
     $pareto using 1:2 with points ls 101 notitle

set terminal svg size 1200,800 dynamic noenhanced font "Sans,13" background rgb "white"
set termoption noenhanced
set output outdir . "acc_gflops_ablations" . ".svg"
replot
unset output
