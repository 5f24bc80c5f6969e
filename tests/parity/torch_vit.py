"""A PyTorch Vision Transformer with timm's module names and structure.

This is the numerical reference for libvit's parity tests and benchmarks: the
seed tutorial's architecture, named as timm names it, so a state_dict maps
one to one onto libvit's parameters. The family options follow timm 1.0's
VisionTransformer (timm/models/vision_transformer.py) line for line:
class_token, reg_tokens, no_embed_class (_pos_embed), pre_norm (norm_pre),
the patch projection's bias, init_values (LayerScale ls1/ls2),
act_layer='quick_gelu', fc_norm and global_pool 'token'/'avg'/'map' (pool,
forward_head; 'map' is AttentionPoolLatent). The arguments carry libvit's configuration names.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class PatchEmbed(nn.Module):
    def __init__(self, patch, in_chans, dim, norm, eps, bias=True):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, patch, patch, bias=bias)
        self.norm = nn.LayerNorm(dim, eps=eps) if norm else nn.Identity()

    def forward(self, x):
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class Attention(nn.Module):
    def __init__(self, dim, heads, qkv_bias, attn_drop, proj_drop):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class QuickGELU(nn.Module):
    """timm.layers.activations.QuickGELU: x * sigmoid(1.702 x)."""

    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class LayerScale(nn.Module):
    """timm.layers.layer_scale.LayerScale."""

    def __init__(self, dim, init_values):
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim, hidden, drop, quick_gelu=False):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = QuickGELU() if quick_gelu else nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x):
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class AttentionPoolLatent(nn.Module):
    """timm.layers.attention_pool.AttentionPoolLatent as VisionTransformer builds it for
    global_pool='map': latent_len 1, q and kv projections with bias, no q/k norm, no pos_embed,
    pool_type 'token'; the unfused attention path."""

    def __init__(self, dim, heads, mlp_ratio, eps, quick_gelu):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.scale = self.head_dim ** -0.5
        self.latent = nn.Parameter(torch.zeros(1, 1, dim))
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), 0.0, quick_gelu)
        nn.init.trunc_normal_(self.latent, std=dim ** -0.5, a=-2 * dim ** -0.5, b=2 * dim ** -0.5)

    def forward(self, x):
        B, N, C = x.shape
        q_latent = self.latent.expand(B, -1, -1)
        q = self.q(q_latent).reshape(B, 1, self.heads, self.head_dim).transpose(1, 2)
        kv = self.kv(x).reshape(B, N, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        k, v = kv.unbind(0)
        q = q * self.scale
        attn = (q @ k.transpose(-2, -1)).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, 1, C)
        x = self.proj(x)
        x = x + self.mlp(self.norm(x))
        return x[:, 0]


class DropPath(nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.p == 0.0 or not self.training:
            return x
        keep = 1 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio, qkv_bias, drop, attn_drop, drop_path, eps, init_values=None,
                 quick_gelu=False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, qkv_bias, attn_drop, drop)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop, quick_gelu)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, x):
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))


class VisionTransformer(nn.Module):
    def __init__(self, img_size=224, patch_size=16, in_channels=3, num_classes=1000, dim=768, depth=12,
                 heads=12, mlp_ratio=4.0, qkv_bias=True, drop_rate=0.0, attn_drop_rate=0.0,
                 drop_path_rate=0.0, ln_eps=1e-6, patch_norm=False, global_pool="token", class_token=True,
                 reg_tokens=0, no_embed_class=False, pre_norm=False, patch_bias=True, quick_gelu=False,
                 fc_norm=-1, init_values=0.0):
        super().__init__()
        assert class_token or global_pool != "token"
        self.global_pool = global_pool
        self.num_prefix_tokens = (1 if class_token else 0) + reg_tokens
        self.no_embed_class = no_embed_class
        use_fc_norm = global_pool == "avg" if fc_norm < 0 else bool(fc_norm)
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, in_channels, dim, patch_norm, ln_eps, patch_bias)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if class_token else None
        self.reg_token = nn.Parameter(torch.zeros(1, reg_tokens, dim)) if reg_tokens else None
        embed_len = grid * grid if no_embed_class else grid * grid + self.num_prefix_tokens
        self.pos_embed = nn.Parameter(torch.zeros(1, embed_len, dim))
        self.pos_drop = nn.Dropout(drop_rate)
        self.norm_pre = nn.LayerNorm(dim, eps=ln_eps) if pre_norm else nn.Identity()
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, depth)]
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, dpr[i],
                                            ln_eps, init_values or None, quick_gelu) for i in range(depth)])
        self.norm = nn.Identity() if use_fc_norm else nn.LayerNorm(dim, eps=ln_eps)
        self.attn_pool = AttentionPoolLatent(dim, heads, mlp_ratio, ln_eps, quick_gelu) if global_pool == "map" \
            else None
        self.fc_norm = nn.LayerNorm(dim, eps=ln_eps) if use_fc_norm else nn.Identity()
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        if self.reg_token is not None:
            nn.init.normal_(self.reg_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias) if m.bias is not None else None

    def _pos_embed(self, x):
        to_cat = []
        if self.cls_token is not None:
            to_cat.append(self.cls_token.expand(x.shape[0], -1, -1))
        if self.reg_token is not None:
            to_cat.append(self.reg_token.expand(x.shape[0], -1, -1))
        if self.no_embed_class:
            x = x + self.pos_embed
            if to_cat:
                x = torch.cat(to_cat + [x], dim=1)
        else:
            if to_cat:
                x = torch.cat(to_cat + [x], dim=1)
            x = x + self.pos_embed
        return self.pos_drop(x)

    def forward_features(self, x):
        """The token sequence after the final norm [B, T, D] (libvit's vit_model_forward_tokens)."""
        x = self._pos_embed(self.patch_embed(x))
        x = self.norm_pre(x)
        return self.norm(self.blocks(x))

    def pool(self, x):
        if self.attn_pool is not None:
            return self.attn_pool(x[:, self.num_prefix_tokens:])
        if self.global_pool == "token":
            return x[:, 0]
        return x[:, self.num_prefix_tokens:].mean(dim=1)

    def forward_head(self, x, pre_logits=False):
        """pre_logits: the pooled features [B, D] (libvit's vit_model_forward_features)."""
        x = self.fc_norm(self.pool(x))
        return x if pre_logits else self.head(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def flops_per_image(img_size, patch_size, in_channels, dim, depth, mlp_ratio, num_classes):
    """Forward FLOPs (2 x multiply-adds) of the matrix products and attention."""
    n = (img_size // patch_size) ** 2
    t = n + 1
    hidden = int(dim * mlp_ratio)
    patch = 2 * n * in_channels * patch_size * patch_size * dim
    block = 2 * t * dim * 3 * dim + 2 * 2 * t * t * dim + 2 * t * dim * dim + 2 * 2 * t * dim * hidden
    return patch + depth * block + 2 * dim * num_classes
