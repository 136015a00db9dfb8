/* torch_bin.h - PyTorch checkpoints (pytorch_model.bin) read without
 * executing anything.
 *
 * torch.save() (PyTorch >= 1.6) writes a zip archive whose entries share
 * one top folder (`archive/`, or the file's base name):
 *
 *   <top>/data.pkl     the state dict, a pickle (read by pickle.h)
 *   <top>/data/<key>   raw little-endian bytes of each storage
 *   <top>/byteorder    "little" or "big"; absent means little
 *   <top>/version ...  ignored
 *
 * Entries are stored (not deflated) with their data 64-byte aligned, so
 * tensors are views into the mapping.  Everything is validated before the
 * caller sees a tensor: the end-of-central-directory record (ZIP64
 * included), every central and local header, every offset and size
 * against the file, no two entries sharing a byte, the CRC-32 of
 * data.pkl, one top folder, each tensor's storage record present and of
 * the size its pickle says, each tensor inside its storage.  Compressed
 * or encrypted entries, big-endian data and the legacy (pre-1.6) format
 * are refused with a message saying so.
 *
 * The result is an st_file (safetensors.h), so the model binders read
 * .bin and .safetensors checkpoints the same way.
 */
#ifndef BCT_TORCH_BIN_H
#define BCT_TORCH_BIN_H

#include <stddef.h>

#include "safetensors.h"
#include "util/status.h"

/* Maps and validates the checkpoint at path. Errors start with the path. */
int torch_bin_open(const char *path, st_file **out, bct_error *err);
/* Validates an in-memory image (not copied: buf must outlive the st_file). */
int torch_bin_open_buffer(const void *buf, size_t len, st_file **out,
                          bct_error *err);

/* 1 when the n bytes at head start like a torch.save checkpoint (a zip
 * archive, or the legacy format, which torch_bin_open then names), 0
 * otherwise (e.g. a safetensors file). */
int torch_bin_sniff(const void *head, size_t n);

#endif
