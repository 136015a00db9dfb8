#include "glue_eval.h"


#include "cli_util.h"

int glue_progress_bar(void *ud, size_t done, size_t total) {
    (void)ud;
    cli_progress(done, total);
    return 0;
}

int glue_run_option(glue_run_opts *o, int c, const char *arg) {
    switch (c) {
    case 'T': o->task_name = arg; return 1;
    case 'd': o->data = arg; return 1;
    case 'j': o->json = 1; return 1;
    case 'b': return cli_parse_int(arg, "--batch", 1, 4096, &o->batch) ? -1 : 1;
    case 't': return cli_parse_int(arg, "--threads", 1, 1024, &o->threads) ? -1 : 1;
    case 'n': return cli_parse_int(arg, "--limit", 1, 1 << 30, &o->limit) ? -1 : 1;
    case 'A': return cli_mode_option(&o->mode, "activations", arg) ? -1 : 1;
    case 'N': return cli_mode_option(&o->mode, "nonlinear", arg) ? -1 : 1;
    case 'B': return cli_mode_option(&o->mode, "nl-bits", arg) ? -1 : 1;
    }
    return 0;
}
