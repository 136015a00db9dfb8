/* bct_file.h - the .bct container: named binary blobs + a JSON header.
 *
 * Layout (docs/bct-format.md): a 64-byte little-endian preamble (magic
 * "BCTMODEL", version, flags, header offset/length, total file length, CRC32
 * of the header and of the blob region), then the blobs at 64-byte-aligned
 * offsets with zero padding between them, then the UTF-8 JSON header
 * {"format":"bct","version":1,"blobs":{name:{offset,size}},"meta":{...}}
 * as the last bytes of the file.
 *
 * This module is only the container.  It knows nothing about what a blob
 * holds; the engine checks blob sizes against the shapes in "meta".
 *
 * Reader: bctf_open() maps the file and validates everything (sizes,
 * magic, version, both CRCs, header JSON, every blob range: aligned, inside
 * the blob region, not overlapping, names unique, padding zero) before
 * returning, so no accessor can read out of bounds.  Blob pointers from a
 * mapped file are 64-byte aligned (mappings are page aligned); from
 * bctf_open_buffer() they are as aligned as the caller's buffer.
 *
 * Writer: streams blobs to "<final_path>.tmp.XXXXXX" in the same directory
 * as they are added (memory use does not depend on blob sizes), then
 * bctf_writer_commit() writes the header and preamble, fsyncs, renames over
 * final_path and fsyncs the directory.  A crash at any point leaves either
 * the old final_path or the complete new one, plus at worst a stale temp
 * file that bctf_remove_stale_temps() deletes.  Final paths should end in
 * ".bct" so that cleanup recognises their temp files.
 *
 * All functions return BCT_OK or a negative BCT_E* code with a message in
 * err (see status.h).  Not thread-safe per object; distinct objects are
 * independent.
 */
#ifndef BCT_BCT_FILE_H
#define BCT_BCT_FILE_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "util/status.h"

#define BCTF_MAGIC "BCTMODEL"
#define BCTF_VERSION 1u
#define BCTF_PREAMBLE_SIZE 64u
#define BCTF_ALIGN 64u

/* ------------------------------------------------------------------------ */
/* reader                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct bctf_file bctf_file;

/* Maps and validates `path` (read-only).  On success *out owns the
 * mapping; on failure *out is NULL and the message starts with the path. */
int bctf_open(const char *path, bctf_file **out, bct_error *err);
/* Same validation on an in-memory image.  Not copied: buf must outlive
 * the bctf_file. */
int bctf_open_buffer(const void *buf, size_t len, bctf_file **out,
                     bct_error *err);
void bctf_close(bctf_file *f);

/* The header's "meta" object, owned by f (valid until bctf_close). */
const cJSON *bctf_meta(const bctf_file *f);
/* Finds a blob by name: BCT_OK, or BCT_EFORMAT "missing blob \"name\"".
 * *data points into the file (for an empty blob: at its offset, never to
 * be dereferenced). */
int bctf_blob(const bctf_file *f, const char *name, const void **data,
              size_t *size, bct_error *err);
/* Listing, in name order (for inspection tools).  i < bctf_blob_count(). */
size_t bctf_blob_count(const bctf_file *f);
int bctf_blob_at(const bctf_file *f, size_t i, const char **name,
                 const void **data, size_t *size);
size_t bctf_file_size(const bctf_file *f);

/* ------------------------------------------------------------------------ */
/* writer                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct bctf_writer bctf_writer;

/* Creates "<final_path>.tmp.XXXXXX" (mode 0644) and writes a zero
 * preamble.  final_path itself is untouched until commit. */
int bctf_writer_open(const char *final_path, bctf_writer **out,
                     bct_error *err);

/* Adds one blob (copied to disk before returning).  Names must be
 * non-empty valid UTF-8 and unique: a duplicate or bad name is
 * BCT_EINVAL and leaves the writer usable.  An I/O error makes every
 * later call fail; the caller then aborts. */
int bctf_writer_add(bctf_writer *w, const char *name, const void *data,
                    size_t size, bct_error *err);

/* The same in pieces, for blobs produced incrementally:
 * begin(name), any number of append(), end().  No other blob may be
 * started, and the writer cannot commit, while one is open. */
int bctf_writer_begin(bctf_writer *w, const char *name, bct_error *err);
int bctf_writer_append(bctf_writer *w, const void *data, size_t size,
                       bct_error *err);
int bctf_writer_end(bctf_writer *w, bct_error *err);

/* Writes the header (meta: a JSON object, copied; NULL means {}), the
 * preamble, fsyncs, renames the temp file to final_path (replacing any
 * existing file atomically) and fsyncs the directory.  Always frees w; on
 * failure the temp file is removed and final_path is untouched (except if
 * only the final directory fsync fails: the new file is then in place but
 * its durability is not guaranteed, and BCT_EIO is returned). */
int bctf_writer_commit(bctf_writer *w, const cJSON *meta, bct_error *err);

/* Removes the temp file and frees w.  NULL is a no-op. */
void bctf_writer_abort(bctf_writer *w);

/* Deletes leftover "*.bct.tmp.XXXXXX" regular files in dir (what a crashed
 * writer leaves).  Files still held by a live writer (in this or another
 * process: writers keep an flock on their temp file) are skipped.  Returns
 * the number removed, or BCT_EIO if dir cannot be read or a matching file
 * cannot be removed. */
int bctf_remove_stale_temps(const char *dir);

/* ------------------------------------------------------------------------ */
/* zlib helpers (for the vocab and other compressible metadata)             */
/* ------------------------------------------------------------------------ */

/* Compresses n bytes (zlib format, level 9) into a malloc'd *out of
 * *out_n bytes. */
int bctf_deflate(const void *in, size_t n, void **out, size_t *out_n,
                 bct_error *err);
/* Decompresses a zlib stream that must expand to exactly expected_n bytes
 * and end with the last input byte.  More output than expected (a zip
 * bomb), less, trailing data or a corrupt stream are BCT_EFORMAT; at most
 * expected_n bytes are ever produced.  *out is malloc'd with one extra NUL
 * byte after the data (handy for text). */
int bctf_inflate(const void *in, size_t n, size_t expected_n, void **out,
                 bct_error *err);

#endif
