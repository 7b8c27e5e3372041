/* fuzz_hf_config.c — libFuzzer target: what qconvert reads from a model directory besides
 * weights and tokenizer: config.json (qrr_hf_config_parse, then the label rules against the
 * real Qwen3 vocabulary), config_sentence_transformers.json (qrr_hf_prompts_parse) and the
 * --labels splitter. Every input goes to all of them. */
#include <string.h>

#include "fuzz_util.h"
#include "hf_config.h"
#include "qrr_format.h"

static qrr_hf_vocab *vocab;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char path[1024];
    snprintf(path, sizeof path, "%s/tokenizer/tokenizer.json", fuzz_reference());
    qrr_diag d;
    qrr_diag_clear(&d);
    if (qrr_hf_vocab_load(path, &vocab, &d) != QRR_OK) {
        fprintf(stderr, "fuzz_hf_config: %s (set QRR_REFERENCE)\n", d.msg);
        exit(1);
    }
    return 0;
}

static void check_string(const char *s, size_t cap, const char *what)
{
    FUZZ_CHECK(memchr(s, 0, cap) != NULL, "%s not NUL-terminated", what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned flags = data[0];
    size_t n = size - 1;
    char *text = malloc(n ? n : 1); /* no terminator: the parsers take a length */
    if (!text) return 0;
    memcpy(text, data + 1, n);
    qrr_diag d;
    qrr_diag_clear(&d);

    qrr_hf_config cfg;
    int rc = qrr_hf_config_parse(text, n, "config.json", &cfg, &d);
    if (rc == QRR_OK) {
        check_string(cfg.architecture, sizeof cfg.architecture, "architecture");
        FUZZ_CHECK(cfg.n_labels <= 2, "n_labels %u", cfg.n_labels);
        for (unsigned i = 0; i < cfg.n_labels; i++) check_string(cfg.labels[i], QRR_HF_LABEL_MAX, "label");
        qrr_label_inputs in = {.cfg = &cfg, .vocab = vocab,
                               .user_no = (flags & 1) ? "no" : NULL,
                               .user_yes = (flags & 1) ? "yes" : NULL,
                               .embedding_evidence = (flags & 2) ? "modules.json" : NULL,
                               .force = (flags & 4) != 0};
        qrr_label_decision dec;
        rc = qrr_hf_decide_labels(&in, &dec, &d);
        if (rc == QRR_OK) {
            FUZZ_CHECK(dec.head_kind < QRR_HEAD_COUNT && dec.label_source < QRR_LABELS_COUNT,
                       "decision enums");
            check_string(dec.reason, sizeof dec.reason, "reason");
            if (dec.head_kind == QRR_HEAD_YES_NO)
                FUZZ_CHECK(dec.no_id < 151669u && dec.yes_id < 151669u, "ids %u %u", dec.no_id,
                           dec.yes_id);
        }
    } else {
        FUZZ_CHECK(rc < 0 && d.msg[0], "status %d without a message", rc);
    }

    qrr_hf_prompts p;
    memset(&p, 0, sizeof p);
    rc = qrr_hf_prompts_parse(text, n, "config_sentence_transformers.json", &p, &d);
    if (rc == QRR_OK) {
        FUZZ_CHECK(p.prefix && p.suffix && p.query_template && p.document_template && p.instruction,
                   "a prompt is NULL");
        check_string(p.source, sizeof p.source, "source");
        qrr_hf_prompts_free(&p);
    }

    /* The --labels splitter on a terminated copy of the first line. */
    char line[256];
    size_t ln = n < sizeof line - 1 ? n : sizeof line - 1;
    memcpy(line, text, ln);
    line[ln] = 0;
    char no[QRR_HF_LABEL_MAX], yes[QRR_HF_LABEL_MAX];
    if (qrr_hf_split_labels(line, no, yes, &d) == QRR_OK) {
        check_string(no, sizeof no, "no");
        check_string(yes, sizeof yes, "yes");
    }
    free(text);
    return 0;
}
