# SMP on separate vCPU threads: hart 0 starts the others with SBI HSM; each
# increments a shared counter with amoadd.d and another, plain counter under
# a spinlock built on LR/SC, then stops itself. Hart 0 checks both counts and
# that every other hart reports STOPPED, and reports them with a done ucall.

        .equ    ITERATIONS, 20000
        .equ    SBI_HSM, 0x48534d
        .equ    UCALL_EID, 0x08464c54

        .text
        .globl  _start
_start:
        la      sp, stack_top           # hart 0's stack
        la      t0, hart_count          # number of harts, written by the test
        lw      s11, 0(t0)
        li      s0, 1
1:      bge     s0, s11, 2f             # for each other hart: hart_start(id, secondary, id)
        li      a7, SBI_HSM
        li      a6, 0
        mv      a0, s0
        la      a1, secondary
        mv      a2, s0
        ecall
        bnez    a0, fail
        addi    s0, s0, 1
        j       1b
2:      addi    s1, s11, -1             # wait for every other hart to finish
        la      t0, finished
3:      lw      t1, 0(t0)
        bne     t1, s1, 3b
        li      s0, 1                   # then until each reports STOPPED
4:      bge     s0, s11, 5f
        li      a7, SBI_HSM
        li      a6, 2
        mv      a0, s0
        ecall
        li      t0, 1
        bne     a1, t0, 4b
        addi    s0, s0, 1
        j       4b
5:      la      t0, lock_counter
        ld      a0, 0(t0)
        la      t0, amo_counter
        ld      a1, 0(t0)
        li      a6, 2                   # ucall DONE(lock_counter, amo_counter)
        li      a7, UCALL_EID
        ecall
fail:   li      a6, 3                   # ucall ABORT(a0)
        li      a7, UCALL_EID
        ecall

# a0 = hart id, a1 = opaque (the hart id again)
secondary:
        bne     a0, a1, fail
        li      t6, ITERATIONS
        la      s1, amo_counter
        la      s2, lock
        la      s3, lock_counter
        li      t5, 1
1:      amoadd.d zero, t5, (s1)
2:      lr.w.aq t0, (s2)                # acquire
        bnez    t0, 2b
        sc.w    t1, t5, (s2)
        bnez    t1, 2b
        ld      t2, 0(s3)               # the critical section: a plain increment
        addi    t2, t2, 1
        sd      t2, 0(s3)
        amoswap.w.rl zero, zero, (s2)   # release
        addi    t6, t6, -1
        bnez    t6, 1b
        la      t0, finished
        amoadd.w zero, t5, (t0)
        li      a7, SBI_HSM             # hart_stop: does not return
        li      a6, 1
        ecall
        j       fail

        .data
        .balign 8
amo_counter:    .dword 0
lock_counter:   .dword 0
lock:           .word 0
finished:       .word 0
hart_count:     .word 1
        .bss
        .balign 16
        .space  4096
stack_top:
