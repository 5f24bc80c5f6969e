/*
 * libvit: train and run Vision Transformers from C.
 *
 * The one header to include. Every handle is opaque; every fallible call
 * returns a vit_status and leaves detail in vit_last_error(). See docs/api.md.
 */
#ifndef VIT_VIT_H
#define VIT_VIT_H

#include "core.h"
#include "model.h"
#include "optim.h"
#include "checkpoint.h"
#include "plot.h"
#include "data.h"
#include "dist.h"
#include "onnx.h"

#endif
