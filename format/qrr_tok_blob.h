/* qrr_tok_blob.h — the tokenizer blob's constants: magic, version, header fields, flags and caps.
 * Shared by the writer (convert/tokenizer_import.c) and the reader (runtime/tokenizer.c);
 * docs/format-tokenizer.md is the normative text. Constants only, no code.
 *
 * Layout (every integer a little-endian u32, no padding, no alignment):
 *   1. header, QRR_TOK_HEADER_SIZE bytes: magic "QRRTOKEN", then the u32 fields below
 *   2. vocab_end[n_ids]         end offset of token i in the vocab bytes (start: end of i-1)
 *   3. vocab bytes              raw token bytes (byte-level mapping undone); length 0 = no
 *                               vocabulary token at that id
 *   4. merges[n_merges]         {left id, right id} in rank order (rank = index)
 *   5. added[n_added]           {id, flags, end}, end = end offset in the added bytes
 *   6. added bytes              added-token contents, UTF-8 as written in the text
 *   7. regex bytes              the Split pre-tokenizer pattern (UTF-8); empty = no split
 * The blob ends exactly after the regex bytes. */
#ifndef QRR_TOK_BLOB_H
#define QRR_TOK_BLOB_H

#define QRR_TOK_MAGIC "QRRTOKEN" /* 8 bytes, no NUL */
#define QRR_TOK_VERSION 1u

/* Header: byte offsets of the u32 fields after the magic. */
enum {
    QRR_TOK_H_VERSION = 8,
    QRR_TOK_H_FLAGS = 12,
    QRR_TOK_H_N_IDS = 16,
    QRR_TOK_H_N_MERGES = 20,
    QRR_TOK_H_N_ADDED = 24,
    QRR_TOK_H_VOCAB_BYTES = 28,
    QRR_TOK_H_ADDED_BYTES = 32,
    QRR_TOK_H_REGEX_BYTES = 36,
    QRR_TOK_H_RESERVED0 = 40,
    QRR_TOK_H_RESERVED1 = 44,
    QRR_TOK_HEADER_SIZE = 48
};

/* Header flags. */
#define QRR_TOK_FLAG_NFC 0x1u           /* NFC normalizer (else none) */
#define QRR_TOK_FLAG_IGNORE_MERGES 0x2u /* a piece found whole in the vocab is one token */
#define QRR_TOK_FLAGS_KNOWN 0x3u

/* Added-token flags (Hugging Face AddedToken fields). */
#define QRR_TOK_ADDED_SPECIAL 0x1u
#define QRR_TOK_ADDED_LSTRIP 0x2u
#define QRR_TOK_ADDED_RSTRIP 0x4u
#define QRR_TOK_ADDED_SINGLE_WORD 0x8u
#define QRR_TOK_ADDED_NORMALIZED 0x10u
#define QRR_TOK_ADDED_KNOWN 0x1Fu

/* Caps: a reader refuses larger values before allocating anything. */
#define QRR_TOK_MAX_IDS (1u << 22)         /* n_ids */
#define QRR_TOK_MAX_MERGES (1u << 22)      /* n_merges */
#define QRR_TOK_MAX_ADDED 65536u           /* n_added */
#define QRR_TOK_MAX_TOKEN_BYTES 1024u      /* one vocabulary token or added-token content */
#define QRR_TOK_MAX_VOCAB_BYTES (48u << 20)
#define QRR_TOK_MAX_ADDED_BYTES (4u << 20)
#define QRR_TOK_MAX_REGEX_BYTES 16384u

#endif
