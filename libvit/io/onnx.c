/* ONNX graph builder and writer (io/onnx.h) over protobuf-c. */
#include "io/onnx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/atomic.h"
#include "io/onnx.pb-c.h"

enum { MAX_ATTRS = 4 };

/* A growable array of message pointers, in the arena. */
typedef struct ptr_list {
    void **items;
    size_t n, cap;
} ptr_list;

struct vit_onnx {
    vit_arena arena;
    bool failed;
    vit_status status; /* why it failed */
    const char *name;
    ptr_list nodes, inits, inputs, outputs, meta;
    Onnx__NodeProto *last;
};

static void *alloc0(vit_onnx *g, size_t bytes) {
    if (g->failed) return NULL;
    void *p = vit_arena_alloc(&g->arena, bytes ? bytes : 1);
    if (!p) {
        g->failed = true;
        g->status = VIT_ERR_OUT_OF_MEMORY;
        return NULL;
    }
    memset(p, 0, bytes);
    return p;
}

static char *dup(vit_onnx *g, const char *s) {
    size_t n = strlen(s) + 1;
    char *d = alloc0(g, n);
    if (d) memcpy(d, s, n);
    return d;
}

static bool push(vit_onnx *g, ptr_list *l, void *item) {
    if (!item || g->failed) return false;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        void **grown = alloc0(g, cap * sizeof *grown);
        if (!grown) return false;
        if (l->n) memcpy(grown, l->items, l->n * sizeof *grown);
        l->items = grown; /* the old array stays in the arena until the end */
        l->cap = cap;
    }
    l->items[l->n++] = item;
    return true;
}

vit_onnx *vit_onnx_new(const char *graph_name) {
    vit_onnx *g = calloc(1, sizeof *g);
    if (!g) {
        vit_fail(VIT_ERR_OUT_OF_MEMORY, "ONNX export: no memory for the graph");
        return NULL;
    }
    vit_arena_init(&g->arena, NULL);
    g->name = dup(g, graph_name);
    return g;
}

void vit_onnx_free(vit_onnx *g) {
    if (!g) return;
    vit_arena_release(&g->arena);
    free(g);
}

/* ---------------------------------------------------------- inputs, outputs */
static Onnx__ValueInfoProto *value_info(vit_onnx *g, const char *name, int ndim, const int64_t *dims,
                                        const char *dim_param) {
    Onnx__ValueInfoProto *vi = alloc0(g, sizeof *vi);
    Onnx__TypeProto *tp = alloc0(g, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = alloc0(g, sizeof *tt);
    Onnx__TensorShapeProto *sh = alloc0(g, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dim = alloc0(g, (size_t)ndim * sizeof *dim);
    if (!vi || !tp || !tt || !sh || !dim) return NULL;
    for (int i = 0; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = alloc0(g, sizeof *d);
        if (!d) return NULL;
        *d = (Onnx__TensorShapeProto__Dimension)ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        if (dims[i] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = dup(g, dim_param);
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        dim[i] = d;
    }
    *sh = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
    sh->n_dim = (size_t)ndim;
    sh->dim = dim;
    *tt = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    *tp = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    *vi = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
    vi->name = dup(g, name);
    vi->type = tp;
    return vi->name ? vi : NULL;
}

void vit_onnx_input(vit_onnx *g, const char *name, int ndim, const int64_t *dims, const char *dim_param) {
    push(g, &g->inputs, value_info(g, name, ndim, dims, dim_param));
}

void vit_onnx_output(vit_onnx *g, const char *name, int ndim, const int64_t *dims, const char *dim_param) {
    push(g, &g->outputs, value_info(g, name, ndim, dims, dim_param));
}

/* ------------------------------------------------------------ initializers */
static Onnx__TensorProto *tensor(vit_onnx *g, const char *name, int ndim, const int64_t *dims, int32_t type) {
    Onnx__TensorProto *t = alloc0(g, sizeof *t);
    int64_t *d = alloc0(g, (size_t)ndim * sizeof *d);
    if (!t || !d) return NULL;
    *t = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
    if (ndim) memcpy(d, dims, (size_t)ndim * sizeof *d);
    t->n_dims = (size_t)ndim;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = type;
    t->name = dup(g, name);
    return push(g, &g->inits, t) && t->name ? t : NULL;
}

/* raw_data is little-endian by the ONNX specification: the host's float and
 * int64 layouts on every platform libvit builds for. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "ONNX raw_data is little-endian");

const char *vit_onnx_weight(vit_onnx *g, const char *name, int ndim, const int64_t *dims, const float *data) {
    Onnx__TensorProto *t = tensor(g, name, ndim, dims, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    if (!t) return NULL;
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)dims[i];
    t->has_raw_data = 1;
    t->raw_data.len = n * sizeof(float);
    t->raw_data.data = (uint8_t *)(uintptr_t)data; /* only read, when packing */
    return t->name;
}

const char *vit_onnx_scalar(vit_onnx *g, const char *name, float value) {
    float *v = alloc0(g, sizeof *v);
    if (!v) return NULL;
    *v = value;
    return vit_onnx_weight(g, name, 0, NULL, v);
}

static const char *int64s(vit_onnx *g, const char *name, int ndim, int n, const int64_t *values) {
    const int64_t dims[1] = {n};
    Onnx__TensorProto *t = tensor(g, name, ndim, dims, ONNX__TENSOR_PROTO__DATA_TYPE__INT64);
    int64_t *v = alloc0(g, (size_t)n * sizeof *v);
    if (!t || !v) return NULL;
    memcpy(v, values, (size_t)n * sizeof *v);
    t->has_raw_data = 1;
    t->raw_data.len = (size_t)n * sizeof *v;
    t->raw_data.data = (uint8_t *)v;
    return t->name;
}

const char *vit_onnx_index(vit_onnx *g, const char *name, int64_t value) {
    return int64s(g, name, 0, 1, &value);
}

const char *vit_onnx_ints(vit_onnx *g, const char *name, int n, const int64_t *values) {
    return int64s(g, name, 1, n, values);
}

/* ------------------------------------------------------------------- nodes */
const char *vit_onnx_node(vit_onnx *g, const char *op, const char *out, int n_in, const char *const *in) {
    g->last = NULL;
    Onnx__NodeProto *node = alloc0(g, sizeof *node);
    char **inputs = alloc0(g, (size_t)n_in * sizeof *inputs);
    char **outputs = alloc0(g, sizeof *outputs);
    Onnx__AttributeProto **attrs = alloc0(g, MAX_ATTRS * sizeof *attrs);
    if (!node || !inputs || !outputs || !attrs) return NULL;
    *node = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
    for (int i = 0; i < n_in; i++) {
        /* An input that failed to be made (NULL) fails the graph. */
        if (!in[i] || !(inputs[i] = dup(g, in[i]))) {
            g->failed = true; /* a NULL input comes from an earlier failure, which set status */
            return NULL;
        }
    }
    node->n_input = (size_t)n_in;
    node->input = inputs;
    node->n_output = 1;
    node->output = outputs;
    outputs[0] = dup(g, out);
    node->name = outputs[0];
    node->op_type = dup(g, op);
    node->attribute = attrs;
    if (!push(g, &g->nodes, node) || !node->op_type || !outputs[0]) return NULL;
    g->last = node;
    return outputs[0];
}

static Onnx__AttributeProto *attr(vit_onnx *g, const char *name, Onnx__AttributeProto__AttributeType type) {
    if (!g->last || g->failed) return NULL;
    if (g->last->n_attribute == MAX_ATTRS) {
        g->failed = true;
        g->status = vit_fail(VIT_ERR_INTERNAL, "ONNX export: node %s has more than %d attributes", g->last->name,
                             MAX_ATTRS);
        return NULL;
    }
    Onnx__AttributeProto *a = alloc0(g, sizeof *a);
    if (!a) return NULL;
    *a = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
    a->name = dup(g, name);
    a->has_type = 1;
    a->type = type;
    g->last->attribute[g->last->n_attribute++] = a;
    return a;
}

void vit_onnx_attr_int(vit_onnx *g, const char *name, int64_t value) {
    Onnx__AttributeProto *a = attr(g, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (!a) return;
    a->has_i = 1;
    a->i = value;
}

void vit_onnx_attr_float(vit_onnx *g, const char *name, float value) {
    Onnx__AttributeProto *a = attr(g, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (!a) return;
    a->has_f = 1;
    a->f = value;
}

void vit_onnx_attr_ints(vit_onnx *g, const char *name, int n, const int64_t *values) {
    Onnx__AttributeProto *a = attr(g, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *v = alloc0(g, (size_t)n * sizeof *v);
    if (!a || !v) return;
    memcpy(v, values, (size_t)n * sizeof *v);
    a->n_ints = (size_t)n;
    a->ints = v;
}

static Onnx__StringStringEntryProto *entry(vit_onnx *g, const char *key, const char *value) {
    Onnx__StringStringEntryProto *e = alloc0(g, sizeof *e);
    if (!e) return NULL;
    *e = (Onnx__StringStringEntryProto)ONNX__STRING_STRING_ENTRY_PROTO__INIT;
    e->key = dup(g, key);
    e->value = dup(g, value);
    return e->key && e->value ? e : NULL;
}

void vit_onnx_meta(vit_onnx *g, const char *key, const char *value) {
    push(g, &g->meta, entry(g, key, value));
}

/* ------------------------------------------------------------------- write */
/* protobuf-c streams the message through append: the weights go from the
 * model's buffer to stdio without an intermediate copy. Write errors stick
 * to the FILE, which vit_atomic_write checks. */
typedef struct file_buffer {
    ProtobufCBuffer base;
    FILE *f;
} file_buffer;

static void file_append(ProtobufCBuffer *b, size_t len, const uint8_t *data) {
    file_buffer *fb = (file_buffer *)b;
    if (len && !ferror(fb->f)) (void)fwrite(data, 1, len, fb->f);
}

static vit_status pack_model(FILE *f, void *user) {
    file_buffer fb = {{file_append}, f};
    protobuf_c_message_pack_to_buffer((const ProtobufCMessage *)user, &fb.base);
    return VIT_OK;
}

/* External data: tensors of at least EXTERNAL_MIN bytes (onnx's own
 * size_threshold) go to one side file, each at a page-aligned offset so a
 * runtime can map it. */
enum { EXTERNAL_MIN = 1024, EXTERNAL_ALIGN = 4096 };

static bool goes_external(const Onnx__TensorProto *t) {
    return t->has_raw_data && t->raw_data.len >= EXTERNAL_MIN;
}

/* The side file: the tensors' bytes in initializer order, zero padding between. */
static vit_status write_external(FILE *f, void *user) {
    const vit_onnx *g = user;
    static const uint8_t zeros[EXTERNAL_ALIGN];
    size_t at = 0;
    for (size_t i = 0; i < g->inits.n; i++) {
        const Onnx__TensorProto *t = g->inits.items[i];
        if (!goes_external(t)) continue;
        size_t pad = (EXTERNAL_ALIGN - at % EXTERNAL_ALIGN) % EXTERNAL_ALIGN;
        if (fwrite(zeros, 1, pad, f) != pad || fwrite(t->raw_data.data, 1, t->raw_data.len, f) != t->raw_data.len)
            return VIT_OK; /* the FILE's error flag reports it */
        at += pad + t->raw_data.len;
    }
    return VIT_OK;
}

/* Writes data_path and points the large tensors at it (location is its
 * name relative to the model file, as ONNX requires). */
static vit_status externalize(vit_onnx *g, const char *data_path, const char *location) {
    Onnx__StringStringEntryProto ***ext = alloc0(g, g->inits.n * sizeof *ext);
    size_t at = 0;
    for (size_t i = 0; ext && i < g->inits.n; i++) {
        const Onnx__TensorProto *t = g->inits.items[i];
        if (!goes_external(t)) continue;
        at += (EXTERNAL_ALIGN - at % EXTERNAL_ALIGN) % EXTERNAL_ALIGN;
        char offset[32], length[32];
        snprintf(offset, sizeof offset, "%zu", at);
        snprintf(length, sizeof length, "%zu", t->raw_data.len);
        Onnx__StringStringEntryProto **e = ext[i] = alloc0(g, 3 * sizeof *e);
        if (!e || !(e[0] = entry(g, "location", location)) || !(e[1] = entry(g, "offset", offset)) ||
            !(e[2] = entry(g, "length", length)))
            break;
        at += t->raw_data.len;
    }
    if (g->failed) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: no memory for the external data table", data_path);
    VIT_TRY(vit_atomic_write(data_path, write_external, g));
    for (size_t i = 0; i < g->inits.n; i++) {
        Onnx__TensorProto *t = g->inits.items[i];
        if (!goes_external(t)) continue;
        t->has_raw_data = 0;
        t->raw_data = (ProtobufCBinaryData){0, NULL};
        t->n_external_data = 3;
        t->external_data = ext[i];
        t->has_data_location = 1;
        t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    }
    return VIT_OK;
}

vit_status vit_onnx_write(vit_onnx *g, const char *path, int external, int64_t opset, int64_t ir_version,
                          const char *producer, const char *producer_version, const char *doc) {
    Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
    Onnx__OperatorSetIdProto ops = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    Onnx__OperatorSetIdProto *opsp = &ops;
    Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
    if (g->failed) {
        if (g->status == VIT_ERR_OUT_OF_MEMORY)
            return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: no memory to build the ONNX graph", path);
        return g->status ? g->status : vit_fail(VIT_ERR_INTERNAL, "%s: the ONNX graph is incomplete", path);
    }
    graph.name = (char *)g->name;
    graph.n_node = g->nodes.n;
    graph.node = (Onnx__NodeProto **)g->nodes.items;
    graph.n_initializer = g->inits.n;
    graph.initializer = (Onnx__TensorProto **)g->inits.items;
    graph.n_input = g->inputs.n;
    graph.input = (Onnx__ValueInfoProto **)g->inputs.items;
    graph.n_output = g->outputs.n;
    graph.output = (Onnx__ValueInfoProto **)g->outputs.items;
    ops.domain = "";
    ops.has_version = 1;
    ops.version = opset;
    model.has_ir_version = 1;
    model.ir_version = ir_version;
    model.n_opset_import = 1;
    model.opset_import = &opsp;
    model.producer_name = (char *)producer;
    model.producer_version = (char *)producer_version;
    model.doc_string = (char *)doc;
    model.graph = &graph;
    model.n_metadata_props = g->meta.n;
    model.metadata_props = (Onnx__StringStringEntryProto **)g->meta.items;
    /* Parsers (protobuf's C++ runtime in onnx and ONNX Runtime) refuse messages
     * of 2 GiB and more: a model that large keeps its weights beside the file. */
    size_t bytes = onnx__model_proto__get_packed_size(&model);
    if (external == 0) external = bytes >= (size_t)INT32_MAX ? 1 : -1;
    if (external > 0) {
        const char *slash = strrchr(path, '/');
        size_t n = strlen(path);
        char *data_path = alloc0(g, n + sizeof ".data");
        if (!data_path) return vit_fail(VIT_ERR_OUT_OF_MEMORY, "%s: no memory for the data file's name", path);
        memcpy(data_path, path, n);
        memcpy(data_path + n, ".data", sizeof ".data");
        VIT_TRY(externalize(g, data_path, slash ? data_path + (slash + 1 - path) : data_path));
        bytes = onnx__model_proto__get_packed_size(&model);
    }
    if (bytes >= (size_t)INT32_MAX)
        return vit_fail(VIT_ERR_UNSUPPORTED, "%s: the ONNX file would be %zu bytes, over protobuf's 2 GiB limit", path,
                        bytes);
    return vit_atomic_write(path, pack_model, &model);
}
