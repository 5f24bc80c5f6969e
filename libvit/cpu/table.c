/*
 * The CPU backend's table for one ISA level: compiled once per level with
 * the kernel files (VIT_CPU_ISA, see cpu/kernels.h), it defines
 * vit_cpu_ops_baseline, vit_cpu_ops_avx2 or vit_cpu_ops_avx512. The kernels
 * have their entries' signatures; memory and products are shared by every
 * level (cpu/cpu.h).
 */
#include "cpu/cpu.h"
#include "cpu/kernels.h"

const vit_backend_ops VIT_ISA_NAME(vit_cpu_ops) = {
    .name = VIT_CPU_ISA == 2 ? "cpu-avx512" : VIT_CPU_ISA == 1 ? "cpu-avx2" : "cpu-baseline",
    .destroy = vit_cpu_destroy,
    .alloc = vit_cpu_alloc,
    .free = vit_cpu_free,
    .copy = vit_cpu_copy,
    .zero = vit_cpu_zero,
    .fill = vit_cpu_fill,
    .sync = vit_cpu_sync,
    .gemm = vit_cpu_backend_gemm,
    .gemm_batched = vit_cpu_backend_gemm_batched,
    .forget_weights = vit_cpu_forget_weights,
    .layernorm_forward = vit_layernorm_forward,
    .layernorm_backward = vit_layernorm_backward,
    .gelu_forward = vit_gelu_forward,
    .gelu_backward = vit_gelu_backward,
    .gelu_bias_backward = vit_gelu_bias_backward,
    .quick_gelu_forward = vit_quick_gelu_forward,
    .quick_gelu_backward = vit_quick_gelu_backward,
    .softmax_forward = vit_softmax_forward,
    .softmax_backward = vit_softmax_backward,
    .attention_sizes = vit_attention_sizes,
    .attention_forward = vit_attention_forward,
    .attention_backward = vit_attention_backward,
    .pool_attention_forward = vit_pool_attention_forward,
    .pool_attention_backward = vit_pool_attention_backward,
    .cross_entropy_forward = vit_cross_entropy_forward,
    .cross_entropy_backward = vit_cross_entropy_backward,
    .patchify = vit_patchify,
    .unpatchify_add = vit_unpatchify_add,
    .embed_tokens_forward = vit_embed_tokens_forward,
    .embed_tokens_backward = vit_embed_tokens_backward,
    .residual_forward = vit_residual_forward,
    .residual_backward = vit_residual_backward,
    .dropout_forward = vit_dropout_forward,
    .dropout_backward = vit_dropout_backward,
    .pool_forward = vit_pool_forward,
    .pool_backward = vit_pool_backward,
    .scale_channels_forward = vit_scale_channels_forward,
    .scale_channels_backward = vit_scale_channels_backward,
    .add = vit_add,
    .bias_backward = vit_bias_backward,
    .resample_bicubic = vit_resample_bicubic,
    .resample_bicubic_backward = vit_resample_bicubic_backward,
    .adamw_update = vit_adamw_update,
    .sum_squares = vit_sum_squares,
};
