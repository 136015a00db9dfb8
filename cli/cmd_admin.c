/* bct admin: the server's /admin API from the command line (libcurl).
 *
 *   upload   POST /admin/compress (multipart, files streamed from disk),
 *            then follows GET /admin/jobs/{id} until the job ends
 *   jobs     GET /admin/jobs
 *   job      GET /admin/jobs/{id}
 *   delete   DELETE /admin/models/{name}
 *   load     POST /admin/models/{name}/load
 *   unload   POST /admin/models/{name}/unload
 */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli_util.h"
#include "model/bert_model.h"
#include "commands.h"

static const char *usage_text =
    "usage: bct admin upload --name NAME [options] [compress options] DIR\n"
    "       bct admin jobs [options]\n"
    "       bct admin job [options] JOB_ID\n"
    "       bct admin delete [options] NAME\n"
    "       bct admin load [options] NAME      (load a store entry on every replica)\n"
    "       bct admin unload [options] NAME    (unload it everywhere, files kept)\n"
    "\n"
    "Talks to a server's admin API (bct serve with admin_token set).\n"
    "upload sends the checkpoint DIR (config.json, model.safetensors or\n"
    "pytorch_model.bin, vocab.txt or tokenizer.json) to POST /admin/compress,\n"
    "then follows the\n"
    "compression job until it succeeds\n"
    "(exit 0) or fails (exit 1), with a progress bar on a terminal.\n"
    "\n"
    "  --server URL        the server (default $BCT_SERVER, else http://127.0.0.1:8080)\n"
    "  --token T           admin token (default $BCT_ADMIN_TOKEN)\n"
    "  --json              print the final job (or answer) as JSON\n"
    "  --timeout S         give up following the job after S seconds (default 3600)\n"
    "  --no-wait           upload: print the job id and return once it is queued\n"
    "  -h, --help          this text\n"
    "\n"
    "Compress options (upload; as bct compress): --preset w8a8|w8a8r|w4a8,\n"
    "--weights F, --embeddings F, --tables F (q8, q4, q3, q2), --block N,\n"
    "--scales f16|log8, --activations int8|fp32, --nonlinear int|fp32,\n"
    "--calib FILE, --calib-n N\n"
    "\n"
    "Accuracy guard (upload): --eval FILE (TSV) --task sst2|mrpc|rte|generic\n"
    "[--max-drop POINTS]: the server evaluates fp32 and the compressed model on\n"
    "FILE and publishes only if accuracy drops by at most POINTS.\n";

typedef struct buf {
    char *data;
    size_t len;
} buf;

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
    buf *b = ud;
    size_t add = size * n;
    char *q = realloc(b->data, b->len + add + 1);
    if (!q) return 0;
    memcpy(q + b->len, p, add);
    b->data = q;
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

typedef struct client {
    char base[1024];
    const char *token;
    int tty;
} client;

static int upload_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                           curl_off_t ulnow) {
    (void)dltotal;
    (void)dlnow;
    const client *c = ud;
    if (c->tty && ultotal > 0)
        fprintf(stderr, "\ruploading %3d%% (%lld of %lld bytes)", (int)(100 * ulnow / ultotal),
                (long long)ulnow, (long long)ultotal);
    return 0;
}

/* One request.  *status: the HTTP status (0 when no answer); *body: the
 * answer (caller frees).  Returns 0, or -1 with the reason printed. */
static int call(const client *c, const char *method, const char *path, curl_mime *mime, long *status,
                char **body) {
    CURL *h = curl_easy_init();
    buf b = {0};
    char url[2048], auth[1200], errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hdrs = NULL;
    *status = 0;
    *body = NULL;
    if (!h) {
        fprintf(stderr, "bct: cannot initialise libcurl\n");
        return -1;
    }
    snprintf(url, sizeof(url), "%s%s", c->base, path);
    if (c->token && *c->token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (mime) {
        curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, upload_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    } else {
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    }
    CURLcode rc = curl_easy_perform(h);
    if (mime && c->tty) fputc('\n', stderr);
    if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        fprintf(stderr, "bct: %s %s: %s\n", method, url, errbuf[0] ? errbuf : curl_easy_strerror(rc));
        free(b.data);
        return -1;
    }
    *body = b.data ? b.data : strdup("");
    return 0;
}

/* Prints the server's error answer. */
static void print_refusal(const char *what, long status, const char *body) {
    cJSON *j = cJSON_Parse(body);
    const cJSON *e = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
    const cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, "error_type") : NULL;
    if (cJSON_IsString(e))
        fprintf(stderr, "bct: %s: %ld %s: %s\n", what, status, cJSON_IsString(t) ? t->valuestring : "",
                e->valuestring);
    else
        fprintf(stderr, "bct: %s: HTTP %ld: %.300s\n", what, status, body);
    cJSON_Delete(j);
}

static const char *str_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double num_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void draw_bar(int progress, const char *stage) {
    char bar[31];
    int fill = progress * 30 / 100;
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : ' ';
    bar[30] = '\0';
    fprintf(stderr, "\r[%s] %3d%% %-60.60s", bar, progress, stage);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One line on a job's "evaluation" (issue 16), if it has one. */
static void print_evaluation(FILE *f, const cJSON *job) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(job, "evaluation");
    if (!cJSON_IsObject(e)) return;
    fprintf(f, "evaluation (%s%s%s, %d rows):", str_of(e, "source"), *str_of(e, "task") ? ", " : "",
            str_of(e, "task"), (int)num_of(e, "rows"));
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(e, "accuracy"))) {
        fprintf(f, " accuracy %.4f (fp32 %.4f), drop %.2f points", num_of(e, "accuracy"),
                num_of(e, "fp32_accuracy"), num_of(e, "drop"));
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(e, "max_drop");
        if (cJSON_IsNumber(md))
            fprintf(f, " (max_drop %.2f: %s)", md->valuedouble,
                    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "passed")) ? "passed" : "refused");
        fputc(';', f);
    }
    fprintf(f, " agreement with fp32 %.4f, |logit diff| mean %.4g max %.4g\n", num_of(e, "agreement"),
            num_of(e, "mean_abs_logit_diff"), num_of(e, "max_abs_logit_diff"));
}

/* Follows a job until it ends.  Returns CLI_OK when it succeeded. */
static int follow(const client *c, const char *id, int json, int timeout_s) {
    char path[256];
    snprintf(path, sizeof(path), "/admin/jobs/%s", id);
    double end = now_s() + timeout_s;
    int misses = 0, rc = CLI_FAIL;
    for (;;) {
        long status;
        char *body;
        if (call(c, "GET", path, NULL, &status, &body) != 0) {
            if (++misses >= 20) return CLI_FAIL; /* the server is gone */
            usleep(500000);
            continue;
        }
        misses = 0;
        if (status != 200) {
            print_refusal("following the job", status, body);
            free(body);
            return CLI_FAIL;
        }
        cJSON *j = cJSON_Parse(body);
        const char *state = j ? str_of(j, "state") : "";
        int finished = !strcmp(state, "succeeded") || !strcmp(state, "failed");
        if (c->tty && j) draw_bar((int)num_of(j, "progress"), str_of(j, "stage"));
        if (finished || now_s() > end) {
            if (c->tty) fputc('\n', stderr);
            if (!finished) fprintf(stderr, "bct: job %s still %s after %d s\n", id, state, timeout_s);
            if (json) {
                printf("%s\n", body);
            } else if (!strcmp(state, "succeeded")) {
                const cJSON *rep = cJSON_GetObjectItemCaseSensitive(j, "report");
                printf("model \"%s\" version %d is served: %.0f bytes, %.2fx smaller (%s); job %s\n",
                       str_of(j, "name"), (int)num_of(j, "version"), num_of(rep, "output_bytes"),
                       num_of(rep, "ratio"),
                       str_of(cJSON_GetObjectItemCaseSensitive(j, "options"), "preset"), id);
            }
            if (!json) print_evaluation(stdout, j);
            if (!strcmp(state, "failed")) fprintf(stderr, "bct: job %s failed: %s\n", id, str_of(j, "error"));
            rc = !strcmp(state, "succeeded") ? CLI_OK : CLI_FAIL;
            cJSON_Delete(j);
            free(body);
            return rc;
        }
        cJSON_Delete(j);
        free(body);
        usleep(250000);
    }
}

static int add_file(curl_mime *m, const char *part, const char *dir, const char *file) {
    char path[4096];
    struct stat st;
    if (dir) snprintf(path, sizeof(path), "%s/%s", dir, file);
    else snprintf(path, sizeof(path), "%s", file);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "bct: %s: not a readable file\n", path);
        return -1;
    }
    curl_mimepart *p = curl_mime_addpart(m);
    curl_mime_name(p, part);
    return curl_mime_filedata(p, path) == CURLE_OK ? 0 : -1;
}

static void add_field(curl_mime *m, const char *name, const char *value) {
    if (!value) return;
    curl_mimepart *p = curl_mime_addpart(m);
    curl_mime_name(p, name);
    curl_mime_data(p, value, CURL_ZERO_TERMINATED);
}

enum { O_SERVER = 1000, O_TOKEN, O_JSON, O_TIMEOUT, O_NOWAIT, O_NAME, O_CALIB, O_EVAL, O_FIELD };

/* Compress options sent as fields of the same name. */
static const char *const field_opts[] = {"preset",      "weights",   "embeddings", "tables", "block",
                                         "scales",      "activations", "nonlinear", "calib-n",
                                         "task",        "max-drop"};
#define N_FIELD_OPTS ((int)(sizeof(field_opts) / sizeof(field_opts[0])))

int cmd_admin(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "upload") && strcmp(sub, "jobs") && strcmp(sub, "job") && strcmp(sub, "delete") &&
        strcmp(sub, "load") && strcmp(sub, "unload")) {
        fprintf(stderr, "bct: unknown admin command \"%s\"\n\n%s", sub, usage_text);
        return CLI_USAGE;
    }
    struct option opts[9 + N_FIELD_OPTS + 1];
    int k = 0;
    opts[k++] = (struct option){"server", required_argument, 0, O_SERVER};
    opts[k++] = (struct option){"token", required_argument, 0, O_TOKEN};
    opts[k++] = (struct option){"json", no_argument, 0, O_JSON};
    opts[k++] = (struct option){"timeout", required_argument, 0, O_TIMEOUT};
    opts[k++] = (struct option){"no-wait", no_argument, 0, O_NOWAIT};
    opts[k++] = (struct option){"name", required_argument, 0, O_NAME};
    opts[k++] = (struct option){"calib", required_argument, 0, O_CALIB};
    opts[k++] = (struct option){"eval", required_argument, 0, O_EVAL};
    opts[k++] = (struct option){"help", no_argument, 0, 'h'};
    for (int i = 0; i < N_FIELD_OPTS; i++)
        opts[k++] = (struct option){field_opts[i], required_argument, 0, O_FIELD + i};
    opts[k] = (struct option){0, 0, 0, 0};

    client c = {.token = getenv("BCT_ADMIN_TOKEN"), .tty = isatty(STDERR_FILENO)};
    const char *server = getenv("BCT_SERVER"), *name = NULL, *calib = NULL, *eval = NULL;
    const char *fields[N_FIELD_OPTS] = {0};
    int json = 0, timeout_s = 3600, nowait = 0, ch;
    optind = 1;
    while ((ch = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
        switch (ch) {
        case O_SERVER: server = optarg; break;
        case O_TOKEN: c.token = optarg; break;
        case O_JSON: json = 1; break;
        case O_NOWAIT: nowait = 1; break;
        case O_NAME: name = optarg; break;
        case O_CALIB: calib = optarg; break;
        case O_EVAL: eval = optarg; break;
        case O_TIMEOUT:
            if (cli_parse_int(optarg, "--timeout", 1, 1000000, &timeout_s)) return CLI_USAGE;
            break;
        case 'h': fputs(usage_text, stdout); return CLI_OK;
        default:
            if (ch >= O_FIELD && ch < O_FIELD + N_FIELD_OPTS) {
                fields[ch - O_FIELD] = optarg;
                break;
            }
            fputs(usage_text, stderr);
            return CLI_USAGE;
        }
    }
    int nargs = argc - 1 - optind;
    char **args = argv + 1 + optind;
    int want = !strcmp(sub, "jobs") ? 0 : 1;
    if (nargs != want || (!strcmp(sub, "upload") && !name)) {
        fprintf(stderr, "bct: admin %s: %s\n\n%s", sub,
                !strcmp(sub, "upload") && !name && nargs == want ? "--name is required"
                                                                   : "wrong number of arguments",
                usage_text);
        return CLI_USAGE;
    }
    snprintf(c.base, sizeof(c.base), "%s", server && *server ? server : "http://127.0.0.1:8080");
    size_t bl = strlen(c.base);
    while (bl && c.base[bl - 1] == '/') c.base[--bl] = '\0';
    if (!c.token || !*c.token)
        fprintf(stderr, "bct: warning: no admin token (--token or BCT_ADMIN_TOKEN)\n");

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "bct: cannot initialise libcurl\n");
        return CLI_FAIL;
    }
    int rc = CLI_FAIL;
    long status = 0;
    char *body = NULL, path[512];
    if (!strcmp(sub, "upload")) {
        CURL *h = curl_easy_init();
        curl_mime *m = h ? curl_mime_init(h) : NULL;
        const char *tok[2];
        int tok_json = bert_hf_tokenizer_files(args[0], tok) == BCT_OK && !strcmp(tok[0], "tokenizer.json");
        if (!m || add_file(m, "config", args[0], "config.json") ||
            add_file(m, "weights", args[0], bert_hf_weights_file(args[0])) ||
            (tok_json ? add_file(m, "tokenizer", args[0], "tokenizer.json") : add_file(m, "vocab", args[0], "vocab.txt")) ||
            (calib && add_file(m, "calibration", NULL, calib)) || (eval && add_file(m, "eval", NULL, eval))) {
            curl_mime_free(m);
            curl_easy_cleanup(h);
            curl_global_cleanup();
            return m ? CLI_USAGE : CLI_FAIL;
        }
        add_field(m, "name", name);
        for (int i = 0; i < N_FIELD_OPTS; i++)
            add_field(m, !strcmp(field_opts[i], "calib-n")    ? "calib_n"
                         : !strcmp(field_opts[i], "max-drop") ? "max_drop"
                                                              : field_opts[i],
                      fields[i]);
        int ok = call(&c, "POST", "/admin/compress", m, &status, &body) == 0;
        curl_mime_free(m);
        curl_easy_cleanup(h);
        if (ok && status == 202) {
            cJSON *j = cJSON_Parse(body);
            char id[128];
            snprintf(id, sizeof(id), "%s", j ? str_of(j, "job_id") : "");
            cJSON_Delete(j);
            if (nowait) {
                if (json) printf("%s\n", body);
                else printf("%s\n", id);
                rc = CLI_OK;
            } else {
                if (!json) fprintf(stderr, "bct: job %s queued\n", id);
                rc = follow(&c, id, json, timeout_s);
            }
        } else if (ok) {
            print_refusal("upload refused", status, body);
            if (json) printf("%s\n", body);
        }
    } else {
        int control = !strcmp(sub, "load") || !strcmp(sub, "unload");
        const char *method = !strcmp(sub, "delete") ? "DELETE" : control ? "POST" : "GET";
        if (!strcmp(sub, "jobs")) snprintf(path, sizeof(path), "/admin/jobs");
        else if (!strcmp(sub, "job")) snprintf(path, sizeof(path), "/admin/jobs/%.400s", args[0]);
        else if (control) snprintf(path, sizeof(path), "/admin/models/%.400s/%s", args[0], sub);
        else snprintf(path, sizeof(path), "/admin/models/%.400s", args[0]);
        if (call(&c, method, path, NULL, &status, &body) == 0) {
            if (status / 100 != 2) {
                print_refusal(sub, status, body);
                if (json) printf("%s\n", body);
            } else if (json || strcmp(sub, "jobs")) {
                printf("%s\n", body);
                if (!json && !strcmp(sub, "job")) { /* the JSON on stdout, a summary for people */
                    cJSON *j = cJSON_Parse(body);
                    print_evaluation(stderr, j);
                    cJSON_Delete(j);
                }
                rc = CLI_OK;
            } else {
                cJSON *j = cJSON_Parse(body);
                const cJSON *it;
                printf("%-22s %-24s %-10s %4s  %s\n", "job", "name", "state", "%", "stage / error");
                cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "jobs")) {
                    const char *err = str_of(it, "error");
                    printf("%-22s %-24s %-10s %4d  %s\n", str_of(it, "job_id"), str_of(it, "name"),
                           str_of(it, "state"), (int)num_of(it, "progress"), *err ? err : str_of(it, "stage"));
                }
                cJSON_Delete(j);
                rc = CLI_OK;
            }
        }
    }
    free(body);
    curl_global_cleanup();
    return rc;
}
