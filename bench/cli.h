/* cli.h — the focusbench subcommand table.
 *
 * Owns: subcommand dispatch and top-level --help. Each subcommand lives in bench/cmd_<name>.c
 * and has the signature int cmd_<name>(int argc, char **argv) (argv[0] is the subcommand);
 * it returns the process exit code (0 success, 1 failure with a one-line reason on stderr,
 * 2 usage error).
 */
#ifndef FOCUSBENCH_CLI_H
#define FOCUSBENCH_CLI_H

int cli_main(int argc, char **argv);

int cmd_version(int argc, char **argv);
int cmd_bench_ops(int argc, char **argv);
int cmd_flops(int argc, char **argv);
int cmd_data(int argc, char **argv);
/* flops --preset P (bench/cmd_flops_model.c; cmd_flops hands over when it sees --preset) */
int cmd_flops_model(int argc, char **argv);
int cmd_infer(int argc, char **argv);
int cmd_train(int argc, char **argv); /* bench/cmd_train.c */
int cmd_eval(int argc, char **argv);  /* bench/cmd_eval.c */
int cmd_launch(int argc, char **argv); /* bench/cmd_launch.c */
int cmd_sweep(int argc, char **argv);  /* bench/cmd_sweep.c */
int cmd_gen_data(int argc, char **argv);
int cmd_plot(int argc, char **argv);    /* bench/cmd_plot.c */
int cmd_regress(int argc, char **argv); /* bench/cmd_regress.c */
int cmd_report(int argc, char **argv);  /* bench/cmd_report.c */
int cmd_cache(int argc, char **argv);
int cmd_profile(int argc, char **argv); /* bench/cmd_profile.c */

#endif
