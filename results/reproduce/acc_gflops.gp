# acc_gflops.gp — written by `focusbench plot --kind acc-gflops` from results/reproduce/curves.csv
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
0.01106912 11.25
0.022730656000000002 14.499999999999998
0.04424672 56.25
EOD
# tsm: gflops_per_video, top1
$curve2 << EOD
0.04424672 57.99999999999999
EOD
# uniadafocus-fixed-exit: gflops_per_video, top1
$curve3 << EOD
0.023009952 10
0.02645912 20
0.029234656 32.5
0.032010192 36.75
0.034785728 37.25
EOD
# uniadafocus: gflops_per_video, top1
$curve4 << EOD
0.02327389436 10
0.02344130052 11
0.02386086048 13.25
0.024360115840000002 15
0.025039983560000003 17.25
0.02589500636 21
0.026369203039999997 22.5
0.027035598120000004 25.5
0.027771584119999998 27.500000000000004
0.02835195252 28.999999999999996
0.028777982360000003 30.75
EOD
# adafocusv2: gflops_per_video, top1
$curve5 << EOD
0.00904653216 40.5
0.009625338720000001 40.5
0.010611453600000001 40.25
0.012090625920000002 41.5
0.01459878768 42.5
0.01742850864 45.5
0.02053691424 46.25
0.024545685600000006 47.25
0.029068951680000003 48
0.03382802784 48.25
0.03616469136 48
EOD
# frameexit: gflops_per_video, top1
$curve6 << EOD
0.011788952560000001 55.00000000000001
0.012619320960000003 54.75
0.014113959280000001 55.75
0.015857702680000002 56.75
0.018680889000000003 58.75
0.022002252680000004 64.25
0.026375330360000004 67.5
0.03130197316 68.25
0.037667815800000004 65
0.04431040124000001 66.5
0.04790844836000001 66.25
EOD
# arnet: gflops_per_video, top1
$curve7 << EOD
0.10119121151999896 51
EOD
# ocsampler: gflops_per_video, top1
$curve8 << EOD
0.055658112 68.75
EOD
# the Pareto front over all curves: no point costs less and is more accurate
$pareto << EOD
0.00904653216 40.5
0.011788952560000001 55.00000000000001
0.014113959280000001 55.75
0.015857702680000002 56.75
0.018680889000000003 58.75
0.022002252680000004 64.25
0.026375330360000004 67.5
0.03130197316 68.25
0.055658112 68.75
EOD

set title "synthetic benchmark: top-1 vs GFLOPs per video" . "\n" . "curves.csv · AMD EPYC" font ",15"
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
set output outdir . "acc_gflops" . ".png"
plot $curve1 using 1:2 with linespoints ls 1 title "tsn", \
     $curve2 using 1:2 with linespoints ls 2 title "tsm", \
     $curve3 using 1:2 with linespoints ls 3 title "uniadafocus-fixed-exit", \
     $curve4 using 1:2 with linespoints ls 4 title "uniadafocus", \
     $curve5 using 1:2 with linespoints ls 5 title "adafocusv2", \
     $curve6 using 1:2 with linespoints ls 6 title "frameexit", \
     $curve7 using 1:2 with linespoints ls 7 title "arnet", \
     $curve8 using 1:2 with linespoints ls 8 title "ocsampler", \
     $pareto using 1:2 with steps ls 100 title "Pareto front (all methods)", \
     $pareto using 1:2 with points ls 101 notitle

set terminal svg size 1200,800 dynamic noenhanced font "Sans,13" background rgb "white"
set termoption noenhanced
set output outdir . "acc_gflops" . ".svg"
replot
unset output
