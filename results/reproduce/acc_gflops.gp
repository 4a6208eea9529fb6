# acc_gflops.gp — written by `focusbench plot --kind acc-gflops` from results/reproduce/curves.csv
# that CSV was written by: focusbench eval --preset synth-tiny --ckpt results/reproduce/run_uniadafocus/model.safetensors --data data/synth-small --budgets 0.05,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.95 --score max-logit --seed 0 --csv results/reproduce/eval_uniadafocus.csv
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

# uniadafocus-fixed-exit: gflops_per_video, top1
$curve1 << EOD
0.023009952 10
0.025271352 8.5
0.02685912 8
0.028446888 8.5
0.030034656 9.5
EOD
# uniadafocus: gflops_per_video, top1
$curve2 << EOD
0.023009952 10
0.023009952 10
0.023009952 10
0.023009952 10
0.023009952 10
0.023009952 10
0.023009952 10
0.023009952 10
0.023009952 10
0.023009952 10
0.023009952 10
EOD
# uniadafocus-random-exit: gflops_per_video, top1
$curve3 << EOD
0.023009952 10
0.023009952 10
0.023009952 10
0.023009952 10
0.023009952 10
0.023009952 10
0.023009952 10
0.023009952 10
0.023009952 10
0.023009952 10
0.023009952 10
EOD
# the Pareto front over all curves: no point costs less and is more accurate
$pareto << EOD
0.023009952 10
EOD

set title "synthetic benchmark: top-1 vs GFLOPs per video" . "\n" . "curves.csv · AMD EPYC" font ",15"
set xlabel "GFLOPs per video (multiply-accumulates, paper convention)"
set ylabel "top-1 accuracy (%)"
set grid back lc rgb "#dddddd" lw 1
set border 3
set tics nomirror
set offsets graph 0.04, graph 0.04, graph 0.06, graph 0.06
set key right bottom box opaque samplen 2.5 spacing 1.2
set style line 1 lc rgb "#0072B2" lw 2.5 pt 7 ps 1.5 dt 1
set style line 2 lc rgb "#D55E00" lw 2.5 pt 5 ps 1.5 dt 1
set style line 3 lc rgb "#009E73" lw 2.5 pt 9 ps 1.5 dt 1
set style line 100 lc rgb "#000000" lw 1.5 dt 2
set style line 101 lc rgb "#000000" lw 1.5 pt 6 ps 2.6

set terminal pngcairo size 1200,800 noenhanced font "Sans,13" background rgb "white"
set termoption noenhanced
set output outdir . "acc_gflops" . ".png"
plot $curve1 using 1:2 with linespoints ls 1 title "uniadafocus-fixed-exit", \
     $curve2 using 1:2 with linespoints ls 2 title "uniadafocus", \
     $curve3 using 1:2 with linespoints ls 3 title "uniadafocus-random-exit", \
     $pareto using 1:2 with steps ls 100 title "Pareto front (all methods)", \
     $pareto using 1:2 with points ls 101 notitle

set terminal svg size 1200,800 dynamic noenhanced font "Sans,13" background rgb "white"
set termoption noenhanced
set output outdir . "acc_gflops" . ".svg"
replot
unset output
