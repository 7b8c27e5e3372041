/* cuda_loader.c — finds and loads the CUDA module (libqrr_cuda.so.0, cuda_model.h) the first
 * time a context asks for device cuda. libqrr links no CUDA library itself: a program that
 * scores on the CPU never loads the CUDA runtime or cuBLASLt (about 200 MiB of memory and
 * 0.05 s at start), and the same libqrr runs on machines that have no CUDA at all. */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cuda_model.h"
#include "qrr.h"

#define MAX_CANDIDATES 5

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static const qrr_cuda_module *loaded; /* set once, under load_lock; never unloaded */

/* The directory of the file holding libqrr, found when it is loaded: its name may be relative
 * to the working directory of that moment (a program run as build/qrr, a library loaded by a
 * relative path), which the process may leave before asking for CUDA. */
static char self_dir[PATH_MAX];

__attribute__((constructor)) static void find_self_dir(void)
{
    Dl_info self;
    char path[PATH_MAX];
    if (dladdr((void *)find_self_dir, &self) && self.dli_fname && strchr(self.dli_fname, '/') &&
        realpath(self.dli_fname, path)) {
        *strrchr(path, '/') = '\0';
        memcpy(self_dir, path, strlen(path) + 1);
    }
}

/* Add dir/name and dir/../lib/name to out (n so far), unless dir is there already or the
 * paths would not fit. */
static int add_dir(char out[][PATH_MAX], int n, const char *dir)
{
    char first[PATH_MAX], second[PATH_MAX];
    int a = snprintf(first, sizeof first, "%s/%s", dir, QRR_CUDA_MODULE_SONAME);
    int b = snprintf(second, sizeof second, "%s/../lib/%s", dir, QRR_CUDA_MODULE_SONAME);
    if (!*dir || a < 0 || a >= PATH_MAX || b < 0 || b >= PATH_MAX) return n;
    for (int i = 0; i < n; i++)
        if (strcmp(out[i], first) == 0) return n;
    memcpy(out[n++], first, (size_t)a + 1);
    memcpy(out[n++], second, (size_t)b + 1);
    return n;
}

/* Where the module is looked for, in order (cuda_model.h): the path in QRR_CUDA_MODULE and
 * nowhere else; or the directory of the file holding libqrr (libqrr.so, or the program linked
 * with libqrr.a) and the running program's own directory, each then with ../lib, and last the
 * dynamic loader's search by name. Returns how many paths it wrote to out. */
static int candidates(char out[MAX_CANDIDATES][PATH_MAX])
{
    const char *env = secure_getenv("QRR_CUDA_MODULE"); /* never in a setuid program */
    if (env && *env) {
        if (snprintf(out[0], PATH_MAX, "%s", env) >= PATH_MAX) out[0][0] = '\0';
        return 1;
    }
    int n = add_dir(out, 0, self_dir);
    char path[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", path, sizeof path - 1);
    if (len > 0) {
        path[len] = '\0';
        if (strrchr(path, '/')) {
            *strrchr(path, '/') = '\0';
            n = add_dir(out, n, path);
        }
    }
    snprintf(out[n++], PATH_MAX, "%s", QRR_CUDA_MODULE_SONAME); /* the loader's search */
    return n;
}

/* The module at path, checked to be of this build; NULL with the reason in d. */
static const qrr_cuda_module *open_module(const char *path, qrr_diag *d)
{
    if (!*path) { /* dlopen("") would return the program itself */
        qrr_fail(d, QRR_ERR_UNSUPPORTED, "QRR_CUDA_MODULE is longer than %d bytes", PATH_MAX - 1);
        return NULL;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s", dlerror());
        return NULL;
    }
    const qrr_cuda_module *(*get)(void) = (const qrr_cuda_module *(*)(void))dlsym(h, QRR_CUDA_MODULE_SYMBOL);
    const qrr_cuda_module *mod = get ? get() : NULL;
    /* abi is the table's first field in every version; the rest is read only when it matches */
    if (!mod)
        qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s has no %s: not a qrr CUDA module", path,
                 QRR_CUDA_MODULE_SYMBOL);
    else if (mod->abi != QRR_CUDA_MODULE_ABI)
        qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s has module ABI %d, this libqrr %d: use the module "
                 "built with this libqrr", path, mod->abi, QRR_CUDA_MODULE_ABI);
    else if (strcmp(mod->version, QRR_VERSION_STRING) != 0 || mod->model_size != sizeof(qrr_model) ||
             mod->layer_size != sizeof(qrr_layer) || mod->info_size != sizeof(qrr_cuda_info))
        qrr_fail(d, QRR_ERR_UNSUPPORTED, "%s is from qrr %s, this libqrr is %s%s: use the module "
                 "built with this libqrr", path, mod->version, QRR_VERSION_STRING,
                 strcmp(mod->version, QRR_VERSION_STRING) ? "" : ", built from other sources");
    else
        return mod;
    dlclose(h);
    return NULL;
}

/* "dir" of a candidate path, or the loader's own search for a bare name, added to list. */
static void add_tried(char *list, size_t cap, const char *path)
{
    size_t used = strlen(list);
    const char *slash = strrchr(path, '/');
    int k = slash ? snprintf(list + used, cap - used, "%s%.*s", used ? ", " : "",
                             (int)(slash - path), path)
                  : snprintf(list + used, cap - used, "%sthe loader's path", used ? ", " : "");
    if (k < 0) list[used] = '\0';
}

const qrr_cuda_module *qrr__cuda_module(qrr_diag *d)
{
    pthread_mutex_lock(&load_lock);
    const qrr_cuda_module *mod = loaded;
    if (!mod) {
        static char paths[MAX_CANDIDATES][PATH_MAX]; /* under load_lock */
        char tried[1024] = "";
        int n = candidates(paths), why_exists = 0;
        qrr_diag why; /* the failure of the first file that exists says the most, else the last */
        qrr_diag_clear(&why);
        for (int i = 0; i < n && !mod; i++) {
            qrr_diag di;
            qrr_diag_clear(&di);
            mod = open_module(paths[i], &di);
            if (mod) break;
            if (!why_exists) {
                why = di;
                why_exists = strchr(paths[i], '/') && access(paths[i], F_OK) == 0;
            }
            add_tried(tried, sizeof tried, paths[i]);
        }
        if (mod)
            loaded = mod;
        else /* the hint first: a long reason or list is what a full message cuts */
            qrr_fail(d, QRR_ERR_UNSUPPORTED,
                     "device cuda: no CUDA module could be loaded (`make` builds %s beside "
                     "libqrr where nvcc is found; QRR_CUDA_MODULE may name its path): %s "
                     "(looked in %s)", QRR_CUDA_MODULE_SONAME, why.msg, tried);
    }
    pthread_mutex_unlock(&load_lock);
    return mod;
}
