# gnuplot script for `make soak': four panels over time from soak.dat
# (columns: t_s requests vm_mb rss_mb fds handles tasks).
# Call with: gnuplot -e "dat='...'; png='...'" soak.gp
set terminal pngcairo size 1400,900 font ",10"
set output png
set multiplot layout 2,2 title "erqwest soak: flat lines mean no leak"
set grid
set xlabel "seconds"
set key top left

set title "memory (MB)"
set yrange [0:*]
plot dat using 1:3 with lines lw 2 title "VM (erlang:memory)", \
     dat using 1:4 with lines lw 2 title "RSS"

set title "open file descriptors"
plot dat using 1:5 with lines lw 2 title "fds"

set title "live NIF resources"
plot dat using 1:6 with lines lw 2 title "handles", \
     dat using 1:7 with lines lw 2 title "tasks"

set title "requests done"
plot dat using 1:2 with lines lw 2 title "requests"
unset multiplot
