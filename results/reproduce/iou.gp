# iou.gp — written by `focusbench plot --kind iou-bars` from boxes_uniadafocus.csv + 4 more
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
0.1001077464140856 0.1001077464140856
0.10022788540050222 0.10022788540050222
0.1809194427441636 0.1809194427441636
0.14141767557775103 0.14141767557775103
0.17451167477616317 0.17451167477616317
EOD

set title "synthetic benchmark: policy boxes vs the ground-truth object (mean IoU)" . "\n" . "boxes_uniadafocus.csv + 4 more · AMD EPYC" font ",15"
set xlabel "method"
set ylabel "mean IoU of the policy's boxes with the ground-truth object"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border rgb "#333333"
set boxwidth 0.6
set grid ytics back lc rgb "#dddddd"
set border 3
set tics nomirror
set yrange [0:*]
set offsets 0, 0, graph 0.1, 0
set xrange [-0.6:4.6]
set yrange [0:1]
set offsets 0, 0, 0, 0
set xtics ("uniadafocus" 0, "uniadafocus-uniform" 1, "uniadafocus-centre" 2, "uniadafocus-randombox" 3, "adafocusv2" 4) scale 0 rotate by -30
unset key
set style line 1 lc rgb "#0072B2" lw 2.5 pt 7 ps 1.5 dt 1
set style line 100 lc rgb "#000000" lw 1.5 dt 2
set style line 101 lc rgb "#000000" lw 1.5 pt 6 ps 2.6

set terminal pngcairo size 1200,800 noenhanced font "Sans,13" background rgb "white"
set termoption noenhanced
set output outdir . "iou" . ".png"
plot $bars using 1 lc rgb "#0072B2" title "all rows", \
     $bars using 0:2:(sprintf("%.3g", column(2))) with labels offset 0,0.8 notitle

set terminal svg size 1200,800 dynamic noenhanced font "Sans,13" background rgb "white"
set termoption noenhanced
set output outdir . "iou" . ".svg"
replot
unset output
