# The A extension on one hart: every AMO in word and doubleword form over
# pairs of edge-case operands (old value and new memory hashed; the word
# forms must leave the other half of the doubleword alone), LR/SC sequences
# (an atomic counter, compare-and-swap that succeeds and fails, SC without
# a reservation, SC to another address, LR.W sign extension), the aq/rl
# ordering bits, rd = x0 and rd = rs2, and misaligned LR, which traps
# (address-misaligned; atomics are not emulated).

        .equ    OPERAND_COUNT, 12

        .text
main:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        la      t0, trap_entry
        csrw    stvec, t0

        la      a0, amo_ops
        la      a1, operands
        li      a2, OPERAND_COUNT
        call    run_binary_table

        # atomic increment with LR/SC, 1000 times
        la      s0, counter
        sd      zero, 0(s0)
        li      s1, 1000
1:      lr.d    t0, (s0)
        addi    t0, t0, 1
        sc.d    t1, t0, (s0)
        bnez    t1, 1b
        addi    s1, s1, -1
        bnez    s1, 1b
        ld      a1, 0(s0)
        la      a0, n_counter
        call    print_kd

        # compare-and-swap on a word
        la      s0, word
        li      t0, 100
        sw      t0, 0(s0)
        mv      a0, s0
        li      a1, 100                 # expected: matches
        li      a2, -5
        call    cas_w
        mv      a1, a0
        la      a0, n_cas_ok
        call    print_kd
        lw      a1, 0(s0)
        la      a0, n_cas_ok_mem
        call    print_kd
        mv      a0, s0
        li      a1, 100                 # expected: stale
        li      a2, 7
        call    cas_w
        mv      a1, a0
        la      a0, n_cas_fail
        call    print_kd
        lw      a1, 0(s0)
        la      a0, n_cas_fail_mem
        call    print_kd

        # SC with no reservation fails and writes nothing
        la      s0, counter
        li      t0, 0x1111
        sd      t0, 0(s0)
        lr.d    t0, (s0)                # use up a reservation
        sc.d    t1, t0, (s0)
        li      t2, 0x2222
        sc.d    a1, t2, (s0)            # none left
        la      a0, n_sc_no_reservation
        call    print_kd
        ld      a1, 0(s0)
        la      a0, n_sc_no_reservation_mem
        call    print_kv

        # SC to an address outside the reservation (4 KiB away) fails
        la      s0, counter
        li      t0, 4096
        add     s1, s0, t0
        sd      zero, 0(s1)
        lr.d    t0, (s0)
        li      t2, 0x3333
        sc.d    a1, t2, (s1)
        la      a0, n_sc_elsewhere
        call    print_kd
        ld      a1, 0(s1)
        la      a0, n_sc_elsewhere_mem
        call    print_kv

        # LR.W sign-extends; SC.W writes 32 bits only
        la      s0, counter
        li      t0, 0x5a5a5a5a80000000
        sd      t0, 0(s0)
        lr.w    a1, (s0)
        la      a0, n_lr_w
        call    print_kv
        la      s0, counter
        lr.w    t0, (s0)
        li      t2, 0x123456789
        sc.w    a1, t2, (s0)
        la      a0, n_sc_w
        call    print_kd
        ld      a1, 0(s0)
        la      a0, n_sc_w_mem
        call    print_kv

        # ordering bits and register corner cases
        la      s0, counter
        li      t0, 10
        sd      t0, 0(s0)
        li      t1, 5
        amoadd.d.aqrl a1, t1, (s0)
        amoadd.d.aq zero, t1, (s0)      # rd = x0: no result
        amoadd.d.rl t1, t1, (s0)        # rd = rs2
        add     a1, a1, t1
        ld      t2, 0(s0)
        slli    t2, t2, 16
        add     a1, a1, t2
        la      a0, n_ordering
        call    print_kv
        la      s0, counter
        lr.d.aq t0, (s0)
        addi    t0, t0, 1
        sc.d.rl a1, t0, (s0)
        ld      t0, 0(s0)
        slli    t0, t0, 8
        add     a1, a1, t0
        la      a0, n_lr_sc_ordering
        call    print_kv
        la      s0, counter
        lr.d.aqrl t0, (s0)
        sc.d.aqrl a1, t0, (s0)
        la      a0, n_lr_sc_aqrl
        call    print_kd

        # a misaligned LR raises a load address-misaligned exception (only
        # LR: QEMU 7.2 reports misaligned AMOs as load-misaligned and lets a
        # misaligned SC fail without trapping, where the spec wants a
        # store/AMO address-misaligned exception)
        la      s0, counter
        addi    s0, s0, 2
        la      s1, at_lr_w
at_lr_w:
        lr.w    t0, (s0)
        la      a0, n_mis_lr_w
        call    report
        la      s0, counter
        addi    s0, s0, 4
        la      s1, at_lr_d
at_lr_d:
        lr.d    t0, (s0)
        la      a0, n_mis_lr_d
        call    report

        li      a0, 0
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

# cas_w(a0 = address, a1 = expected, a2 = new) -> 1 if swapped
cas_w:
        sext.w  a1, a1
1:      lr.w    t0, (a0)
        bne     t0, a1, 2f
        sc.w    t1, a2, (a0)
        bnez    t1, 1b
        li      a0, 1
        ret
2:      li      a0, 0
        ret

# report(a0 = name): the trap's scause, stval - s0 and sepc - s1
report:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        call    puts
        la      a0, s_scause
        call    puts
        la      t0, saved_scause
        ld      a0, 0(t0)
        call    print_udec
        la      a0, s_stval
        call    puts
        la      t0, saved_stval
        ld      a0, 0(t0)
        sub     a0, a0, s0
        call    print_dec
        la      a0, s_sepc
        call    puts
        la      t0, saved_sepc
        ld      a0, 0(t0)
        sub     a0, a0, s1
        call    print_dec
        call    newline
        la      t0, saved_scause
        sd      zero, 0(t0)
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

trap_entry:
        addi    sp, sp, -16
        sd      t0, 0(sp)
        sd      t1, 8(sp)
        csrr    t0, scause
        la      t1, saved_scause
        sd      t0, 0(t1)
        csrr    t0, stval
        la      t1, saved_stval
        sd      t0, 0(t1)
        csrr    t0, sepc
        la      t1, saved_sepc
        sd      t0, 0(t1)
        addi    t0, t0, 4
        csrw    sepc, t0
        ld      t0, 0(sp)
        ld      t1, 8(sp)
        addi    sp, sp, 16
        sret

# AMO operations for run_binary_table: memory starts as a0, the operand is
# a1; returns old ^ rotl(new memory doubleword, 17).
amo_epilogue:
        ld      t4, 0(t3)               # whole doubleword (word ops: both halves)
        slli    t5, t4, 17
        srli    t4, t4, 47
        or      t4, t4, t5
        xor     a0, t2, t4
        ret

op_amoswap_d:   la t3, cell
                sd a0, 0(t3)
                amoswap.d t2, a1, (t3)
                j  amo_epilogue
op_amoadd_d:    la t3, cell
                sd a0, 0(t3)
                amoadd.d t2, a1, (t3)
                j  amo_epilogue
op_amoxor_d:    la t3, cell
                sd a0, 0(t3)
                amoxor.d t2, a1, (t3)
                j  amo_epilogue
op_amoand_d:    la t3, cell
                sd a0, 0(t3)
                amoand.d t2, a1, (t3)
                j  amo_epilogue
op_amoor_d:     la t3, cell
                sd a0, 0(t3)
                amoor.d t2, a1, (t3)
                j  amo_epilogue
op_amomin_d:    la t3, cell
                sd a0, 0(t3)
                amomin.d t2, a1, (t3)
                j  amo_epilogue
op_amomax_d:    la t3, cell
                sd a0, 0(t3)
                amomax.d t2, a1, (t3)
                j  amo_epilogue
op_amominu_d:   la t3, cell
                sd a0, 0(t3)
                amominu.d t2, a1, (t3)
                j  amo_epilogue
op_amomaxu_d:   la t3, cell
                sd a0, 0(t3)
                amomaxu.d t2, a1, (t3)
                j  amo_epilogue
# Word forms on the low word (t3 = cell) and on the high word (t3 = cell+4).
op_amoswap_w:   la t3, cell
                sd a0, 0(t3)
                amoswap.w t2, a1, (t3)
                j  amo_epilogue
op_amoadd_w:    la t3, cell
                sd a0, 0(t3)
                amoadd.w t2, a1, (t3)
                j  amo_epilogue
op_amoxor_w:    la t3, cell
                sd a0, 0(t3)
                amoxor.w t2, a1, (t3)
                j  amo_epilogue
op_amoand_w:    la t3, cell
                sd a0, 0(t3)
                amoand.w t2, a1, (t3)
                j  amo_epilogue
op_amoor_w:     la t3, cell
                sd a0, 0(t3)
                amoor.w t2, a1, (t3)
                j  amo_epilogue
op_amomin_w:    la t3, cell
                sd a0, 0(t3)
                amomin.w t2, a1, (t3)
                j  amo_epilogue
op_amomax_w:    la t3, cell
                sd a0, 0(t3)
                amomax.w t2, a1, (t3)
                j  amo_epilogue
op_amominu_w:   la t3, cell
                sd a0, 0(t3)
                amominu.w t2, a1, (t3)
                j  amo_epilogue
op_amomaxu_w:   la t3, cell
                sd a0, 0(t3)
                amomaxu.w t2, a1, (t3)
                j  amo_epilogue
op_amoadd_w_hi: la t3, cell
                sd a0, 0(t3)
                addi t3, t3, 4
                amoadd.w t2, a1, (t3)
                addi t3, t3, -4
                j  amo_epilogue
op_amomin_w_hi: la t3, cell
                sd a0, 0(t3)
                addi t3, t3, 4
                amomin.w t2, a1, (t3)
                addi t3, t3, -4
                j  amo_epilogue
op_amomaxu_w_hi: la t3, cell
                sd a0, 0(t3)
                addi t3, t3, 4
                amomaxu.w t2, a1, (t3)
                addi t3, t3, -4
                j  amo_epilogue
op_lr_sc_d:     la t3, cell             # LR/SC as a read-modify-write
                sd a0, 0(t3)
                lr.d t2, (t3)
                add t4, t2, a1
                sc.d t5, t4, (t3)
                add t2, t2, t5
                j  amo_epilogue
op_lr_sc_w:     la t3, cell
                sd a0, 0(t3)
                lr.w t2, (t3)
                xor t4, t2, a1
                sc.w t5, t4, (t3)
                add t2, t2, t5
                j  amo_epilogue

        .section .rodata
program_name:
        .asciz  "atomics"
s_scause:       .asciz ": scause="
s_stval:        .asciz " stval=+"
s_sepc:         .asciz " sepc=+"
n_counter:      .asciz "lr/sc counter"
n_cas_ok:       .asciz "cas(100 -> -5) swapped"
n_cas_ok_mem:   .asciz "  word"
n_cas_fail:     .asciz "cas(100 -> 7) swapped"
n_cas_fail_mem: .asciz "  word"
n_sc_no_reservation: .asciz "sc.d without reservation"
n_sc_no_reservation_mem: .asciz "  memory"
n_sc_elsewhere: .asciz "sc.d outside the reservation"
n_sc_elsewhere_mem: .asciz "  memory"
n_lr_w:         .asciz "lr.w of 0x80000000"
n_sc_w:         .asciz "sc.w"
n_sc_w_mem:     .asciz "  doubleword"
n_ordering:     .asciz "amoadd .aqrl/.aq/.rl"
n_lr_sc_ordering: .asciz "lr.d.aq/sc.d.rl"
n_lr_sc_aqrl:   .asciz "lr.d.aqrl/sc.d.aqrl"
n_mis_lr_w:     .asciz "misaligned lr.w"
n_mis_lr_d:     .asciz "misaligned lr.d"
n_amoswap_d:    .asciz "amoswap.d"
n_amoadd_d:     .asciz "amoadd.d"
n_amoxor_d:     .asciz "amoxor.d"
n_amoand_d:     .asciz "amoand.d"
n_amoor_d:      .asciz "amoor.d"
n_amomin_d:     .asciz "amomin.d"
n_amomax_d:     .asciz "amomax.d"
n_amominu_d:    .asciz "amominu.d"
n_amomaxu_d:    .asciz "amomaxu.d"
n_amoswap_w:    .asciz "amoswap.w"
n_amoadd_w:     .asciz "amoadd.w"
n_amoxor_w:     .asciz "amoxor.w"
n_amoand_w:     .asciz "amoand.w"
n_amoor_w:      .asciz "amoor.w"
n_amomin_w:     .asciz "amomin.w"
n_amomax_w:     .asciz "amomax.w"
n_amominu_w:    .asciz "amominu.w"
n_amomaxu_w:    .asciz "amomaxu.w"
n_amoadd_w_hi:  .asciz "amoadd.w (high word)"
n_amomin_w_hi:  .asciz "amomin.w (high word)"
n_amomaxu_w_hi: .asciz "amomaxu.w (high word)"
n_lr_sc_d:      .asciz "lr.d/sc.d add"
n_lr_sc_w:      .asciz "lr.w/sc.w xor"
        .align  3
operands:
        .dword  0, 1, -1, 2, 0x7fffffff, 0x80000000, 0xffffffff
        .dword  0x7fffffffffffffff, 0x8000000000000000, 0x00000001ffffffff
        .dword  0xfedcba9876543210, 0x0123456789abcdef
amo_ops:
        .dword  op_amoswap_d, n_amoswap_d, op_amoadd_d, n_amoadd_d
        .dword  op_amoxor_d, n_amoxor_d, op_amoand_d, n_amoand_d
        .dword  op_amoor_d, n_amoor_d, op_amomin_d, n_amomin_d
        .dword  op_amomax_d, n_amomax_d, op_amominu_d, n_amominu_d
        .dword  op_amomaxu_d, n_amomaxu_d
        .dword  op_amoswap_w, n_amoswap_w, op_amoadd_w, n_amoadd_w
        .dword  op_amoxor_w, n_amoxor_w, op_amoand_w, n_amoand_w
        .dword  op_amoor_w, n_amoor_w, op_amomin_w, n_amomin_w
        .dword  op_amomax_w, n_amomax_w, op_amominu_w, n_amominu_w
        .dword  op_amomaxu_w, n_amomaxu_w
        .dword  op_amoadd_w_hi, n_amoadd_w_hi, op_amomin_w_hi, n_amomin_w_hi
        .dword  op_amomaxu_w_hi, n_amomaxu_w_hi
        .dword  op_lr_sc_d, n_lr_sc_d, op_lr_sc_w, n_lr_sc_w
        .dword  0, 0

        .data
        .align  3
saved_scause:   .dword 0
saved_stval:    .dword 0
saved_sepc:     .dword 0
cell:           .dword 0
word:           .dword 0

        .bss
        .align  12
counter:        .space 8192
