/* commands.h - the bct subcommands; each returns a CLI_* exit code. */
#ifndef BCT_COMMANDS_H
#define BCT_COMMANDS_H

int cmd_classify(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_admin(int argc, char **argv);
int cmd_compress(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
