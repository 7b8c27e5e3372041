/* test_hf_config.c — config.json parsing (the reference configs and one refusal per
 * rule, each naming the key), config_sentence_transformers.json prompt shapes, token
 * lookup in the real tokenizer.json, and the label rules in their order. */
#include <criterion/criterion.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_config.h"
#include "qrr_format.h"
#include "qrr_test_util.h"

static const char *reference(void)
{
    const char *r = getenv("QRR_REFERENCE");
    return r && *r ? r : "../shared/reference";
}

static qrr_hf_config load_ref(const char *model)
{
    char p[512];
    snprintf(p, sizeof p, "%s/models/%s/config.json", reference(), model);
    qrr_hf_config c;
    qrr_diag d;
    cr_assert_eq(qrr_hf_config_load(p, &c, &d), QRR_OK, "%s", d.msg);
    return c;
}

Test(config, reference_configs)
{
    qrr_hf_config c = load_ref("tiny-tied");
    cr_assert_eq(c.seqcls, 0);
    cr_assert_eq(c.hidden, 32);
    cr_assert_eq(c.n_layers, 3);
    cr_assert_eq(c.n_heads, 2);
    cr_assert_eq(c.n_kv_heads, 1);
    cr_assert_eq(c.head_dim, 128);
    cr_assert_eq(c.intermediate, 96);
    cr_assert_eq(c.vocab, 151669);
    cr_assert_eq(c.max_position, 40960);
    cr_assert_eq(c.tied, 1);
    cr_assert_eq(c.n_labels, 0);
    cr_assert_float_eq(c.rms_eps, 1e-6, 0);
    cr_assert_float_eq(c.rope_theta, 1e6, 0);
    c = load_ref("tiny-untied");
    cr_assert_eq(c.tied, 0);
    cr_assert_eq(c.n_labels, 2);
    cr_assert_str_eq(c.labels[0], "no");
    cr_assert_str_eq(c.labels[1], "yes");
    c = load_ref("tiny-seqcls");
    cr_assert_eq(c.seqcls, 1);
    cr_assert_eq(c.n_labels, 1);
    cr_assert_str_eq(c.labels[0], "LABEL_0");
}

#define BASE_NO_THETA                                                                            \
    "\"model_type\": \"qwen3\", \"architectures\": [\"Qwen3ForCausalLM\"], \"hidden_size\": 64, " \
    "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "           \
    "\"intermediate_size\": 96, \"vocab_size\": 1000, \"rms_norm_eps\": 1e-6, "                    \
    "\"max_position_embeddings\": 4096"
#define BASE BASE_NO_THETA ", \"rope_theta\": 1000000"

static int parse(const char *text, qrr_hf_config *c, qrr_diag *d)
{
    return qrr_hf_config_parse(text, strlen(text), "cfg/config.json", c, d);
}

Test(config, head_dim_default_and_tie_default)
{
    qrr_hf_config c;
    qrr_diag d;
    cr_assert_eq(parse("{" BASE "}", &c, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(c.head_dim, 128); /* Transformers' Qwen3Config default, not hidden 64 / 4 heads */
    cr_assert_eq(c.tied, 0);
    cr_assert_eq(parse("{" BASE ", \"head_dim\": 128, \"tie_word_embeddings\": true}", &c, &d), QRR_OK);
    cr_assert_eq(c.head_dim, 128);
    cr_assert_eq(c.tied, 1);
    /* Transformers' default map counts as no map */
    cr_assert_eq(parse("{" BASE ", \"id2label\": {\"0\": \"LABEL_0\", \"1\": \"LABEL_1\"}}", &c, &d), QRR_OK);
    cr_assert_eq(c.n_labels, 0);
    cr_assert_eq(c.default_label_map, 1);
}

static void refused(const char *text, int want, const char *n1, const char *n2)
{
    qrr_hf_config c;
    qrr_diag d;
    int st = parse(text, &c, &d);
    cr_assert_eq(st, want, "%s: got %s (%s)", text, qrr_status_str(st), d.msg);
    cr_assert(strstr(d.msg, "cfg/config.json"), "no file name in: %s", d.msg);
    cr_assert(strstr(d.msg, n1), "'%s' lacks '%s'", d.msg, n1);
    if (n2) cr_assert(strstr(d.msg, n2), "'%s' lacks '%s'", d.msg, n2);
}

Test(config, refusals)
{
    refused("{" BASE, QRR_ERR_JSON, "not valid JSON", NULL);
    refused("[1]", QRR_ERR_CONFIG, "an array", "object");
    refused("{" BASE ", \"model_type\": \"llama\"}", QRR_ERR_JSON, "duplicate", NULL);
    refused("{\"model_type\": \"llama\"}", QRR_ERR_CONFIG, "\"llama\"", "qwen3");
    refused("{\"model_type\": 3}", QRR_ERR_CONFIG, "model_type", "an integer");
    refused("{\"model_type\": \"qwen3\", \"architectures\": [\"Qwen3Model\"]}", QRR_ERR_CONFIG,
            "Qwen3Model", "Qwen3ForCausalLM");
    refused("{\"model_type\": \"qwen3\", \"architectures\": \"Qwen3ForCausalLM\"}", QRR_ERR_CONFIG,
            "architectures", "a string");
    refused("{\"model_type\": \"qwen3\", \"architectures\": [\"Qwen3ForCausalLM\"]}", QRR_ERR_CONFIG,
            "hidden_size", "missing");
    refused("{\"model_type\": \"qwen3\", \"architectures\": [\"Qwen3ForCausalLM\"], \"hidden_size\": \"64\"}",
            QRR_ERR_CONFIG, "hidden_size", "a string");
    refused("{\"model_type\": \"qwen3\", \"architectures\": [\"Qwen3ForCausalLM\"], \"hidden_size\": 0}",
            QRR_ERR_CONFIG, "hidden_size", "is 0");
    refused("{" BASE ", \"num_key_value_heads\": 3}", QRR_ERR_JSON, "duplicate", NULL);
    refused("{\"model_type\": \"qwen3\", \"architectures\": [\"Qwen3ForCausalLM\"], \"hidden_size\": 64, "
            "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 3, "
            "\"intermediate_size\": 96, \"vocab_size\": 1000, \"rms_norm_eps\": 1e-6, "
            "\"rope_theta\": 1000000, \"max_position_embeddings\": 4096}",
            QRR_ERR_CONFIG, "num_key_value_heads 3", NULL);
    refused("{" BASE ", \"head_dim\": 7}", QRR_ERR_CONFIG, "head_dim 7", "even");
    refused("{" BASE ", \"hidden_act\": \"gelu\"}", QRR_ERR_CONFIG, "hidden_act", "gelu");
    refused("{" BASE ", \"attention_bias\": true}", QRR_ERR_CONFIG, "attention_bias", NULL);
    refused("{" BASE ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}}", QRR_ERR_CONFIG,
            "rope_scaling", "yarn");
    refused("{" BASE ", \"tie_word_embeddings\": 1}", QRR_ERR_CONFIG, "tie_word_embeddings", NULL);
    refused("{" BASE ", \"id2label\": {\"0\": \"a\", \"1\": \"b\", \"2\": \"c\"}}", QRR_ERR_CONFIG,
            "3 labels", NULL);
    refused("{" BASE ", \"id2label\": {\"0\": \"no\", \"1\": \"yes\"}, \"label2id\": {\"no\": 1, \"yes\": 0}}",
            QRR_ERR_CONFIG, "label2id", NULL);
    refused("{" BASE ", \"rms_norm_eps\": -1}", QRR_ERR_JSON, "duplicate", NULL);
}

/* Each way "architectures" can be wrong gets its own message, not "an array, expected an
 * array of strings" for an array. */
Test(config, architectures_messages)
{
    refused("{\"model_type\": \"qwen3\", \"architectures\": []}", QRR_ERR_CONFIG,
            "\"architectures\" is empty", "Qwen3ForCausalLM");
    refused("{\"model_type\": \"qwen3\"}", QRR_ERR_CONFIG, "\"architectures\" is missing",
            "Qwen3ForCausalLM");
    refused("{\"model_type\": \"qwen3\", \"architectures\": [3]}", QRR_ERR_CONFIG,
            "architectures[0] is an integer", "expected a string");
    refused("{\"model_type\": \"qwen3\", \"architectures\": null}", QRR_ERR_CONFIG,
            "\"architectures\" is null", "expected an array");
}

/* BASE with 6 layers */
#define BASE6                                                                                    \
    "\"model_type\": \"qwen3\", \"architectures\": [\"Qwen3ForCausalLM\"], \"hidden_size\": 64, " \
    "\"num_hidden_layers\": 6, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, "           \
    "\"intermediate_size\": 96, \"vocab_size\": 1000, \"rms_norm_eps\": 1e-6, "                    \
    "\"max_position_embeddings\": 4096, \"rope_theta\": 1000000"

/* Where Transformers would put a sliding window (BASE has 2 layers): recorded, not refused
 * here (whether it matters depends on the max length), with the layers named. */
Test(config, sliding_window_layers)
{
    static const struct { const char *keys; uint32_t window; const char *layers; } cases[] = {
        {"", 0, NULL},
        {", \"use_sliding_window\": false, \"sliding_window\": 64, \"max_window_layers\": 0", 0, NULL},
        {", \"use_sliding_window\": true, \"sliding_window\": 64, \"max_window_layers\": 1", 64,
         "layer 1"},
        {", \"use_sliding_window\": true, \"sliding_window\": 64, \"max_window_layers\": 2", 0, NULL},
        {", \"use_sliding_window\": true, \"sliding_window\": null, \"max_window_layers\": 0", 0, NULL},
        /* Transformers' defaults: sliding_window 4096, max_window_layers 28 (> 2 layers) */
        {", \"use_sliding_window\": true, \"max_window_layers\": 0", 4096, "layers 0, 1"},
        {", \"use_sliding_window\": true, \"sliding_window\": 64", 0, NULL},
        /* layer_types, when given, names the layers */
        {", \"use_sliding_window\": true, \"sliding_window\": 64, \"max_window_layers\": 2, "
         "\"layer_types\": [\"sliding_attention\", \"full_attention\"]", 64, "layer 0"},
        {", \"use_sliding_window\": false, \"sliding_window\": 64, "
         "\"layer_types\": [\"sliding_attention\", \"sliding_attention\"]", 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char text[1024];
        snprintf(text, sizeof text, "{" BASE "%s}", cases[i].keys);
        qrr_hf_config c;
        qrr_diag d;
        cr_assert_eq(parse(text, &c, &d), QRR_OK, "%s: %s", text, d.msg);
        cr_assert_eq(c.sliding_window, cases[i].window, "%s", text);
        if (cases[i].window) cr_assert_str_eq(c.sliding_layers, cases[i].layers, "%s", text);
    }
    /* more layers: runs of three or more as ranges, the others one by one */
    char text[2048];
    snprintf(text, sizeof text, "{" BASE6 ", \"use_sliding_window\": true, \"sliding_window\": 64, "
             "\"layer_types\": [\"sliding_attention\", \"full_attention\", \"sliding_attention\", "
             "\"sliding_attention\", \"sliding_attention\", \"full_attention\"]}");
    qrr_hf_config c;
    qrr_diag d;
    cr_assert_eq(parse(text, &c, &d), QRR_OK, "%s", d.msg);
    cr_assert_str_eq(c.sliding_layers, "layers 0, 2..4");
    /* a list longer than the room for it is cut with "..." */
    char many[8192];
    int n = snprintf(many, sizeof many, "{\"model_type\": \"qwen3\", \"architectures\": "
                     "[\"Qwen3ForCausalLM\"], \"hidden_size\": 64, \"num_hidden_layers\": 300, "
                     "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"intermediate_size\": 96, "
                     "\"vocab_size\": 1000, \"rms_norm_eps\": 1e-6, \"max_position_embeddings\": 4096, "
                     "\"rope_theta\": 1000000, \"use_sliding_window\": true, \"layer_types\": [");
    for (int i = 0; i < 300; i++)
        n += snprintf(many + n, sizeof many - (size_t)n, "%s\"%s_attention\"", i ? ", " : "",
                      i % 2 ? "full" : "sliding");
    snprintf(many + n, sizeof many - (size_t)n, "]}");
    cr_assert_eq(parse(many, &c, &d), QRR_OK, "%s", d.msg);
    size_t len = strlen(c.sliding_layers);
    cr_assert(len == sizeof c.sliding_layers - 1 && !strcmp(c.sliding_layers + len - 3, "...") &&
              !strncmp(c.sliding_layers, "layers 0, 2, 4, ", 16), "%s", c.sliding_layers);
    refused("{" BASE ", \"use_sliding_window\": \"yes\"}", QRR_ERR_CONFIG, "use_sliding_window", "a string");
    refused("{" BASE ", \"sliding_window\": 0}", QRR_ERR_CONFIG, "sliding_window", "is 0");
    refused("{" BASE ", \"max_window_layers\": -1}", QRR_ERR_CONFIG, "max_window_layers", NULL);
    refused("{" BASE ", \"layer_types\": [\"full_attention\"]}", QRR_ERR_CONFIG, "layer_types", "2 strings");
    refused("{" BASE ", \"layer_types\": [\"full_attention\", \"local\"]}", QRR_ERR_CONFIG,
            "layer_types[1]", NULL);
}

Test(config, rope_scaling_default_accepted)
{
    qrr_hf_config c;
    qrr_diag d;
    cr_assert_eq(parse("{" BASE ", \"rope_scaling\": null}", &c, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(parse("{" BASE ", \"rope_scaling\": {\"rope_type\": \"default\"}}", &c, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(c.rope_theta, 1000000.0);
}

/* Transformers v5 writes "rope_parameters" in place of rope_theta / rope_scaling; its theta
 * wins over a top-level one, and with none at all theta is Transformers' default 10000. */
Test(config, rope_parameters_of_transformers_v5)
{
    qrr_hf_config c;
    qrr_diag d;
    cr_assert_eq(parse("{" BASE_NO_THETA ", \"rope_parameters\": {\"rope_type\": \"default\", "
                       "\"rope_theta\": 5000000.0}}", &c, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(c.rope_theta, 5000000.0);
    cr_assert_eq(parse("{" BASE ", \"rope_parameters\": {\"rope_type\": \"default\", "
                       "\"rope_theta\": 5000000.0}}", &c, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(c.rope_theta, 5000000.0);
    cr_assert_eq(parse("{" BASE ", \"rope_parameters\": {\"rope_type\": \"default\"}}", &c, &d),
                 QRR_OK, "%s", d.msg);
    cr_assert_eq(c.rope_theta, 1000000.0);
    cr_assert_eq(parse("{" BASE_NO_THETA "}", &c, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(c.rope_theta, 10000.0);
    refused("{" BASE_NO_THETA ", \"rope_parameters\": {\"rope_type\": \"linear\", \"factor\": 2, "
            "\"rope_theta\": 1e6}}", QRR_ERR_CONFIG, "rope_parameters", "linear");
    refused("{" BASE_NO_THETA ", \"rope_parameters\": {\"rope_type\": \"default\", \"factor\": 2}}",
            QRR_ERR_CONFIG, "rope_parameters", "plain RoPE");
    refused("{" BASE_NO_THETA ", \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": -1}}",
            QRR_ERR_CONFIG, "rope_theta", "-1");
    refused("{" BASE_NO_THETA ", \"rope_parameters\": [1]}", QRR_ERR_CONFIG, "rope_parameters", "an array");
}

/* ---- prompts ---------------------------------------------------------------------- */

static qrr_hf_prompts prompts(const char *text, int want)
{
    qrr_hf_prompts p;
    qrr_diag d;
    int st = qrr_hf_prompts_parse(text, text ? strlen(text) : 0, "cst.json", &p, &d);
    cr_assert_eq(st, want, "%s: %s", text ? text : "(none)", d.msg);
    return p;
}

Test(prompts, defaults)
{
    qrr_hf_prompts p = prompts(NULL, QRR_OK);
    cr_assert_str_eq(p.prefix, QRR_DEFAULT_PREFIX);
    cr_assert_str_eq(p.suffix, "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
    cr_assert_str_eq(p.query_template, "<Instruct>: {instruction}\n<Query>: ");
    cr_assert_str_eq(p.document_template, "\n<Document>: ");
    cr_assert_str_eq(p.instruction,
                     "Given a web search query, retrieve relevant passages that answer the query");
    qrr_hf_prompts_free(&p);
}

Test(prompts, four_keys)
{
    qrr_hf_prompts p = prompts("{\"prompts\": {\"prefix\": \"P\", \"suffix\": \"S\", \"query\": \"Q: \", "
                               "\"document\": \" D: \"}}", QRR_OK);
    cr_assert_str_eq(p.prefix, "P");
    cr_assert_str_eq(p.suffix, "S");
    cr_assert_str_eq(p.query_template, "Q: ");
    cr_assert_str_eq(p.document_template, " D: ");
    cr_assert(strstr(p.source, "prefix suffix query document"), "%s", p.source);
    qrr_hf_prompts_free(&p);
}

Test(prompts, placeholders_and_chat_opening)
{
    /* the system turn inside the query prompt is split off as the prefix; text after
     * {query} moves to the document template; text after {document} is the suffix */
    qrr_hf_prompts p = prompts(
        "{\"prompts\": {\"query\": \"<|im_start|>system\\nJudge.<|im_end|>\\n<|im_start|>user\\n"
        "<Instruct>: {instruction}\\n<Query>: {query}\\n\", \"document\": \"<Document>: {document}<|im_end|>\\n\"}}",
        QRR_OK);
    cr_assert_str_eq(p.prefix, "<|im_start|>system\nJudge.<|im_end|>\n<|im_start|>user\n");
    cr_assert_str_eq(p.query_template, "<Instruct>: {instruction}\n<Query>: ");
    cr_assert_str_eq(p.document_template, "\n<Document>: ");
    cr_assert_str_eq(p.suffix, "<|im_end|>\n");
    qrr_hf_prompts_free(&p);
}

/* Seq-cls conversions write the instruction out in the query prompt: it becomes the default
 * and {instruction} takes its place, so that a request's instruction replaces it. A query
 * prompt without the <Instruct> line is kept as it is. */
Test(prompts, instruction_written_out_becomes_the_default)
{
    qrr_hf_prompts p = prompts(
        "{\"prompts\": {\"query\": \"<|im_start|>system\\nJudge.<|im_end|>\\n<|im_start|>user\\n"
        "<Instruct>: Find the answer\\n<Query>: \", \"document\": \"\\n<Document>: \"}}", QRR_OK);
    cr_assert_str_eq(p.prefix, "<|im_start|>system\nJudge.<|im_end|>\n<|im_start|>user\n");
    cr_assert_str_eq(p.query_template, "<Instruct>: {instruction}\n<Query>: ");
    cr_assert_str_eq(p.instruction, "Find the answer");
    cr_assert(strstr(p.source, "made the default"), "%s", p.source);
    qrr_hf_prompts_free(&p);
    p = prompts("{\"prompts\": {\"query\": \"Query: \"}}", QRR_OK);
    cr_assert_str_eq(p.query_template, "Query: ");
    qrr_hf_prompts_free(&p);
}

Test(prompts, refusals)
{
    prompts("{\"prompts\": {\"query\": 3}}", QRR_ERR_CONFIG);
    prompts("{\"prompts\": [1]}", QRR_ERR_CONFIG);
    prompts("{\"prompts\": ", QRR_ERR_JSON);
    prompts("{\"prompts\": {\"suffix\": \"S\", \"document\": \"<Document>: {document}T\"}}", QRR_ERR_CONFIG);
    qrr_hf_prompts p = prompts("{\"other\": 1}", QRR_OK); /* no prompts: defaults */
    cr_assert_str_eq(p.prefix, QRR_DEFAULT_PREFIX);
    qrr_hf_prompts_free(&p);
}

/* ---- tokens and labels ------------------------------------------------------------- */

static qrr_hf_vocab *real_vocab(void)
{
    char p[512];
    snprintf(p, sizeof p, "%s/tokenizer/tokenizer.json", reference());
    qrr_hf_vocab *v;
    qrr_diag d;
    cr_assert_eq(qrr_hf_vocab_load(p, &v, &d), QRR_OK, "%s", d.msg);
    return v;
}

/* The expected ids come from the reference tokenizer file itself. */
static int64_t vocab_id(const char *key)
{
    char p[512];
    snprintf(p, sizeof p, "%s/tokenizer/tokenizer.json", reference());
    static json_t *root; /* parsed once per test process */
    json_error_t e;
    if (!root) root = json_load_file(p, 0, &e);
    cr_assert_not_null(root);
    return json_integer_value(json_object_get(json_object_get(json_object_get(root, "model"), "vocab"), key));
}

Test(vocab, lookup)
{
    qrr_hf_vocab *v = real_vocab();
    cr_assert_eq(qrr_hf_vocab_find(v, "yes"), vocab_id("yes"));
    cr_assert_eq(qrr_hf_vocab_find(v, "no"), vocab_id("no"));
    cr_assert_eq(qrr_hf_vocab_find(v, " yes"), vocab_id("\xc4\xa0yes")); /* Ġyes */
    cr_assert_eq(qrr_hf_vocab_find(v, "<|im_end|>"), 151645);
    cr_assert_eq(qrr_hf_vocab_find(v, "definitely not a token"), -1);
    qrr_hf_vocab_free(v);
}

Test(labels, split)
{
    char no[QRR_HF_LABEL_MAX], yes[QRR_HF_LABEL_MAX];
    qrr_diag d;
    cr_assert_eq(qrr_hf_split_labels("no,yes", no, yes, &d), QRR_OK);
    cr_assert_str_eq(no, "no");
    cr_assert_str_eq(yes, "yes");
    cr_assert_eq(qrr_hf_split_labels("yes", no, yes, &d), QRR_ERR_INVALID_ARG);
    cr_assert_eq(qrr_hf_split_labels(",yes", no, yes, &d), QRR_ERR_INVALID_ARG);
    cr_assert_eq(qrr_hf_split_labels("a,b,c", no, yes, &d), QRR_ERR_INVALID_ARG);
}

static qrr_hf_config cfg_with(const char *extra)
{
    char text[2048];
    snprintf(text, sizeof text, "{" BASE ", \"vocab_size\": 151669%s}", extra);
    /* BASE has vocab_size 1000; a duplicate key is refused, so rebuild without it */
    char *p = strstr(text, "\"vocab_size\": 1000, ");
    memmove(p, p + strlen("\"vocab_size\": 1000, "), strlen(p + strlen("\"vocab_size\": 1000, ")) + 1);
    qrr_hf_config c;
    qrr_diag d;
    cr_assert_eq(parse(text, &c, &d), QRR_OK, "%s: %s", text, d.msg);
    return c;
}

static int decide(const qrr_hf_config *c, const qrr_hf_vocab *v, const char *no, const char *yes,
                  const char *evidence, int force, qrr_label_decision *o, qrr_diag *d)
{
    qrr_label_inputs in = {c, v, no, yes, evidence, force};
    return qrr_hf_decide_labels(&in, o, d);
}

Test(labels, rules_in_order)
{
    qrr_hf_vocab *v = real_vocab();
    int64_t yes = vocab_id("yes"), no = vocab_id("no");
    qrr_label_decision o;
    qrr_diag d;

    /* 2. inferred */
    qrr_hf_config c = cfg_with("");
    cr_assert_eq(decide(&c, v, NULL, NULL, NULL, 0, &o, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(o.label_source, QRR_LABELS_INFERRED);
    cr_assert_eq(o.head_kind, QRR_HEAD_YES_NO);
    cr_assert_eq(o.yes_id, yes);
    cr_assert_eq(o.no_id, no);
    cr_assert(strstr(o.reason, "inferred") && strstr(o.reason, "Qwen3ForCausalLM"), "%s", o.reason);

    /* 2. embedding look-alike: refused, unless forced */
    cr_assert_eq(decide(&c, v, NULL, NULL, "modules.json", 0, &o, &d), QRR_ERR_NOT_RERANKER);
    cr_assert(strstr(d.msg, "modules.json") && strstr(d.msg, "HINT"), "%s", d.msg);
    cr_assert_eq(decide(&c, v, NULL, NULL, "modules.json", 1, &o, &d), QRR_OK);
    cr_assert(strstr(o.reason, "--force"));

    /* 1. a label map, either order, mapped by name */
    c = cfg_with(", \"id2label\": {\"0\": \"yes\", \"1\": \"no\"}");
    cr_assert_eq(decide(&c, v, NULL, NULL, "modules.json", 0, &o, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(o.label_source, QRR_LABELS_FROM_CONFIG);
    cr_assert_eq(o.yes_id, yes);
    cr_assert_eq(o.no_id, no);
    c = cfg_with(", \"label2id\": {\"false\": 0, \"true\": 1}");
    cr_assert_eq(decide(&c, v, NULL, NULL, NULL, 0, &o, &d), QRR_ERR_NOT_RERANKER);
    cr_assert(strstr(d.msg, "--labels"), "%s", d.msg);
    c = cfg_with(", \"id2label\": {\"0\": \"LABEL_0\"}");
    cr_assert_eq(decide(&c, v, NULL, NULL, NULL, 0, &o, &d), QRR_ERR_NOT_RERANKER); /* causal LM */

    /* 1. one label on a sequence classifier: single logit */
    qrr_hf_config s = load_ref("tiny-seqcls");
    cr_assert_eq(decide(&s, v, NULL, NULL, NULL, 0, &o, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(o.head_kind, QRR_HEAD_SINGLE_LOGIT);
    cr_assert_eq(o.from_score, 1);
    cr_assert_eq(o.yes_id, QRR_NO_TOKEN);
    cr_assert_eq(o.no_id, QRR_NO_TOKEN);
    cr_assert_eq(decide(&s, v, "no", "yes", NULL, 0, &o, &d), QRR_ERR_NOT_RERANKER);

    /* 3. the user wins over the map */
    c = cfg_with(", \"id2label\": {\"0\": \"no\", \"1\": \"yes\"}");
    cr_assert_eq(decide(&c, v, "No", "Yes", NULL, 0, &o, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(o.label_source, QRR_LABELS_FROM_USER);
    cr_assert_eq(o.yes_id, vocab_id("Yes"));
    cr_assert_eq(o.no_id, vocab_id("No"));
    cr_assert_eq(decide(&c, v, "no", "no", NULL, 0, &o, &d), QRR_ERR_NOT_RERANKER);
    qrr_hf_vocab_free(v);
}

Test(labels, tokenizer_without_yes)
{
    char dir[64], p[512];
    tu_tmpdir(dir, sizeof dir);
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "cannot create %s", p);
    fputs("{\"added_tokens\": [], \"model\": {\"type\": \"BPE\", \"vocab\": {\"no\": 5, \"maybe\": 6}}}", f);
    fclose(f);
    qrr_hf_vocab *v;
    qrr_diag d;
    cr_assert_eq(qrr_hf_vocab_load(p, &v, &d), QRR_OK, "%s", d.msg);
    qrr_hf_config c = cfg_with("");
    qrr_label_decision o;
    cr_assert_eq(decide(&c, v, NULL, NULL, NULL, 0, &o, &d), QRR_ERR_NOT_RERANKER);
    cr_assert(strstr(d.msg, "\"yes\""), "%s", d.msg);
    qrr_hf_vocab_free(v);
}
