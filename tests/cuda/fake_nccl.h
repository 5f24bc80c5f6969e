/* The state of the fake NCCL in tests/cuda/fake_module.c (-DFAKE_NCCL):
 * NCCL of one rank in host memory that records what it is asked to do, for
 * tests/dist/test_dist_device.c to read through the communicator. */
#ifndef VIT_TESTS_FAKE_NCCL_H
#define VIT_TESTS_FAKE_NCCL_H

#include <stdint.h>

enum { FAKE_NCCL_SLOTS = 1024 };

struct vit_cuda_nccl {
    int rank, size;
    int averages, broadcasts, out_of_order, bad_slots;
    int64_t averaged_floats, broadcast_bytes;
    const float *first, *last; /* the first and the last bucket averaged */
    int64_t first_count;
    int next_slot;
    int polls[FAKE_NCCL_SLOTS]; /* a collective is done at its second poll */
    int not_done_seen;
};

#endif
