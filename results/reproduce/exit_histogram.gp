# exit_histogram.gp — written by `focusbench plot --kind exit-histogram` from results/reproduce/exits_uniadafocus.csv
# that CSV was written by: focusbench eval --preset synth-tiny --boxes-csv results/reproduce/boxes_uniadafocus.csv --ckpt results/reproduce/run_uniadafocus/model.safetensors --data data/synth-small --budgets 0.05,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,0.95 --score max-logit --seed 0 --csv results/reproduce/eval_uniadafocus.csv --exits-csv results/reproduce/exits_uniadafocus.csv
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

$bars << EOD
99 99 99 297
1 0.75 0.75 2.5
0 0.25 0 0.25
0 0 0 0
0 0 0.25 0.25
EOD

set title "Uni-AdaFocus: where validation videos exit, per budget" . "\n" . "exits_uniadafocus.csv · AMD EPYC · synth-tiny" font ",15"
set xlabel "exit taken"
set ylabel "videos (% of each series's videos)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border rgb "#333333"
set boxwidth 0.9
set grid ytics back lc rgb "#dddddd"
set border 3
set tics nomirror
set yrange [0:*]
set offsets 0, 0, graph 0.1, 0
set xrange [-0.6:4.6]
set xtics ("0" 0, "1" 1, "2" 2, "3" 3, "4" 4) scale 0
set key outside right top box samplen 2 spacing 1.2 title "point"
set style line 1 lc rgb "#0072B2" lw 2.5 pt 7 ps 1.5 dt 1
set style line 2 lc rgb "#D55E00" lw 2.5 pt 5 ps 1.5 dt 1
set style line 3 lc rgb "#009E73" lw 2.5 pt 9 ps 1.5 dt 1
set style line 100 lc rgb "#000000" lw 1.5 dt 2
set style line 101 lc rgb "#000000" lw 1.5 pt 6 ps 2.6

set terminal pngcairo size 1200,800 noenhanced font "Sans,13" background rgb "white"
set termoption noenhanced
set output outdir . "exit_histogram" . ".png"
plot $bars using 1 lc rgb "#0072B2" title "p=0.2", \
     $bars using 2 lc rgb "#D55E00" title "p=0.5", \
     $bars using 3 lc rgb "#009E73" title "p=0.8", \
     NaN notitle

set terminal svg size 1200,800 dynamic noenhanced font "Sans,13" background rgb "white"
set termoption noenhanced
set output outdir . "exit_histogram" . ".svg"
replot
unset output
