# The demand-paging benchmark's guest, in the spirit of the KVM selftests'
# memstress guest code: every vCPU (started at _start with a0 = hart id)
# walks the pages of its region, one access per 4 KiB page, once per pass.
# For each page it checks a word of the data the VMM paged in (pass 0, unless
# the limit run on fresh memory turns the check off), stores its own marker
# (pass 0) or checks the marker is still there (later passes), and
# times the whole access with the `time` CSR, so the fault latency seen by the
# vCPU lands in a histogram whatever resolved the fault. After each pass it
# makes a SYNC ucall (a0 = pass); after the last, DONE, and starts over if
# run again (the VMM runs a warm-up first, then the measured run). Wrong data: ABORT
# with a0 = address, a1 = value read, a2 = value expected.
#
# The VMM fills memstress_args before boot (see src/bench/demand-paging/).
# Page g of the test region (g counted from the region's start) holds the
# VMM's "remote" page r = g & remote_mask, whose 64-bit word k is
# seed ^ (r << 16) ^ k. The marker stored in word 0 is ~g, so a page mapped
# at the wrong place shows.

        .equ    UCALL_EID, 0x08464c54   # src/vmm/ucall.ts
        .equ    UCALL_SYNC, 1
        .equ    UCALL_DONE, 2
        .equ    UCALL_ABORT, 3

        # memstress_args: global words, then one record per vCPU.
        .equ    ARG_TEST_GPA, 0
        .equ    ARG_REMOTE_MASK, 8
        .equ    ARG_SEED, 16
        .equ    ARG_PASSES, 24
        .equ    ARG_HISTOGRAMS, 32
        .equ    ARG_CHECK_DATA, 40      # 0: pass 0 does not check the VMM's data (fresh memory)
        .equ    ARG_VCPUS, 64
        .equ    VCPU_ARGS_SHIFT, 5      # 32 bytes per vCPU: gpa, pages, max latency x 2
        .equ    VCPU_GPA, 0
        .equ    VCPU_PAGES, 8
        .equ    VCPU_MAX_LATENCY, 16
        .equ    MAX_VCPUS, 256

        # Latency histograms, one per vCPU per pass (at most 2 passes): 4096
        # buckets of one tick (0.1 us) then 4096 of 256 ticks; u32 counts.
        .equ    FINE_BUCKETS, 4096
        .equ    LAST_BUCKET, 8191
        .equ    COARSE_SHIFT, 8
        .equ    HISTOGRAM_SHIFT, 15     # 32 KiB per histogram
        .equ    VCPU_HISTOGRAMS_SHIFT, 16

        .text
        .globl  _start
_start:
        la      s0, memstress_args
        mv      s10, a0                 # hart id
        slli    t0, a0, VCPU_ARGS_SHIFT
        add     s1, s0, t0
        addi    s1, s1, ARG_VCPUS       # this vCPU's record
        ld      s2, VCPU_GPA(s1)
        ld      s3, VCPU_PAGES(s1)
        ld      s4, ARG_TEST_GPA(s0)
        ld      s5, ARG_REMOTE_MASK(s0)
        ld      s6, ARG_SEED(s0)
        ld      s7, ARG_PASSES(s0)
        ld      t0, ARG_HISTOGRAMS(s0)
        slli    t1, a0, VCPU_HISTOGRAMS_SHIFT
        add     s8, t0, t1              # this pass's histogram
        li      s9, 0                   # pass
        li      t6, FINE_BUCKETS
        li      a7, LAST_BUCKET

pass_loop:
        li      a1, 4096                # page stride (the ucall's return clobbers a0/a1)
        ld      t3, ARG_CHECK_DATA(s0)
        seqz    t3, t3
        or      a6, s9, t3              # 0: check the VMM's data in this pass
        mv      a2, s2                  # address
        li      a3, 0                   # pages done
        li      s11, 0                  # largest latency this pass
        beqz    s3, pass_done
page_loop:
        sub     t0, a2, s4
        srli    t0, t0, 12              # g
        and     t1, t0, s5
        slli    t1, t1, 16
        xor     t1, t1, s6
        xori    t2, t1, 1               # word 1 of remote page g & mask
        not     t5, t0                  # the marker
        rdtime  a4
        ld      t4, 8(a2)
        bnez    a6, 4f
        bne     t4, t2, bad_data
4:      beqz    s9, 1f
        ld      t4, 0(a2)
        bne     t4, t5, bad_marker
1:      sd      t5, 0(a2)
        rdtime  a5
        sub     a5, a5, a4              # latency in ticks
        bgeu    s11, a5, 2f
        mv      s11, a5
2:      bltu    a5, t6, 3f
        srli    a5, a5, COARSE_SHIFT
        add     a5, a5, t6
        bleu    a5, a7, 3f
        mv      a5, a7
3:      slli    a5, a5, 2
        add     a5, a5, s8
        lw      t3, 0(a5)
        addiw   t3, t3, 1
        sw      t3, 0(a5)
        add     a2, a2, a1
        addi    a3, a3, 1
        bltu    a3, s3, page_loop

pass_done:
        slli    t0, s9, 3
        add     t0, t0, s1
        sd      s11, VCPU_MAX_LATENCY(t0)
        mv      a0, s9
        li      a7, UCALL_EID
        li      a6, UCALL_SYNC
        ecall
        li      a7, LAST_BUCKET
        li      t0, 1
        slli    t0, t0, HISTOGRAM_SHIFT
        add     s8, s8, t0
        addi    s9, s9, 1
        bltu    s9, s7, pass_loop

        li      a7, UCALL_EID
        li      a6, UCALL_DONE
        mv      a0, s10
        ecall
        # Run again (from the arguments as the VMM has rewritten them) if the
        # VMM runs this vCPU again: the warm-up run, then the measured one.
        mv      a0, s10
        j       _start

bad_marker:
        mv      t2, t5
bad_data:
        mv      a0, a2
        mv      a1, t4
        mv      a2, t2
        li      a7, UCALL_EID
        li      a6, UCALL_ABORT
        ecall
1:      wfi
        j       1b

        .data
        .balign 64
        .globl  memstress_args
memstress_args:
        .zero   ARG_VCPUS + MAX_VCPUS * 32
