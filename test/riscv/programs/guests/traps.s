# Supervisor trap handling: stvec points at an entry that swaps to a trap
# stack through sscratch, saves every register, records scause, stval and
# sepc, steps sepc past the instruction and returns with sret. The program
# then raises illegal-instruction exceptions of several kinds and an ebreak,
# and prints what the handler saw (sepc relative to the faulting
# instruction). It also checks that a trap preserves every register, that
# sstatus.SPP/SPIE record the trap, and that vectored mode still sends
# exceptions to the base address.
#
# For a breakpoint the spec lets stval be 0 or the faulting pc (QEMU 7.2
# writes 0, faultline the pc), so that one is printed as "0-or-pc".

        .equ    FRAME, 256

        .text
main:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        la      t0, trap_stack_top
        csrw    sscratch, t0
        la      t0, trap_entry
        csrw    stvec, t0

        la      a1, n_zero
        la      a0, at_zero
at_zero:
        .word   0x00000000              # all-zero: defined illegal
        call    report

        la      a1, n_ones
        la      a0, at_ones
at_ones:
        .word   0xffffffff
        call    report

        la      a1, n_reserved
        la      a0, at_reserved
at_reserved:
        .word   0x0000706b              # major opcode 0x6b is reserved
        call    report

        la      a1, n_mstatus
        la      a0, at_mstatus
at_mstatus:
        csrr    a2, mstatus             # machine CSR from S-mode
        call    report

        la      a1, n_mscratch
        la      a0, at_mscratch
at_mscratch:
        csrw    mscratch, a2
        call    report

        la      a1, n_unknown_csr
        la      a0, at_unknown_csr
at_unknown_csr:
        csrr    a2, 0x5ff               # an unallocated supervisor CSR
        call    report

        la      a1, n_cycle_write
        la      a0, at_cycle_write
at_cycle_write:
        csrw    cycle, zero             # read-only CSR
        call    report

        la      a1, n_mret
        la      a0, at_mret
at_mret:
        .word   0x30200073              # mret from S-mode
        call    report

        la      a1, n_ebreak
        la      a0, at_ebreak
at_ebreak:
        ebreak
        call    report

        # reserved encodings (reserved in every extension QEMU 7.2 has, too)
        la      a1, n_enc0
        la      a0, 1f
1:      .word   0x0205151b
        call    report
        la      a1, n_enc1
        la      a0, 1f
1:      .word   0x0205551b
        call    report
        la      a1, n_enc2
        la      a0, 1f
1:      .word   0x04051513
        call    report
        la      a1, n_enc3
        la      a0, 1f
1:      .word   0x40b51533
        call    report
        la      a1, n_enc4
        la      a0, 1f
1:      .word   0x40b52533
        call    report
        la      a1, n_enc5
        la      a0, 1f
1:      .word   0x00b52063
        call    report
        la      a1, n_enc6
        la      a0, 1f
1:      .word   0x00057503
        call    report
        la      a1, n_enc7
        la      a0, 1f
1:      .word   0x00a5c023
        call    report
        la      a1, n_enc8
        la      a0, 1f
1:      .word   0x00051067
        call    report
        la      a1, n_enc9
        la      a0, 1f
1:      .word   0x000000f3
        call    report
        la      a1, n_enc10
        la      a0, 1f
1:      .word   0x10208073
        call    report
        la      a1, n_enc11
        la      a0, 1f
1:      .word   0x1015252f
        call    report

        # every register survives a trap
        call    register_check

        # SPP = 1 (trap from S), SPIE = the SIE before the trap
        csrci   sstatus, 2              # SIE off
        la      a1, n_spp
        la      a0, at_spp
at_spp:
        ebreak
        call    report
        la      t0, saved_sstatus
        ld      a1, 0(t0)
        andi    a1, a1, 0x122           # SPP, SPIE, SIE
        la      a0, n_sstatus_in_trap
        call    print_kv
        csrr    a1, sstatus
        andi    a1, a1, 0x122
        la      a0, n_sstatus_after
        call    print_kv
        csrsi   sstatus, 2              # SIE on (nothing is enabled in sie)
        la      a1, n_spie
        la      a0, at_spie
at_spie:
        ebreak
        call    report
        la      t0, saved_sstatus
        ld      a1, 0(t0)
        andi    a1, a1, 0x122
        la      a0, n_sstatus_in_trap
        call    print_kv
        csrr    a1, sstatus
        andi    a1, a1, 0x122
        la      a0, n_sstatus_after
        call    print_kv
        csrci   sstatus, 2

        # vectored mode: exceptions still go to BASE
        la      t0, trap_entry
        ori     t0, t0, 1
        csrw    stvec, t0
        csrr    a1, stvec
        la      t0, trap_entry
        sub     a1, a1, t0
        la      a0, n_stvec_vectored
        call    print_kv
        # (ebreak, which OpenSBI delegates: OpenSBI 1.1 redirects the
        # exceptions it handles itself to stvec without clearing MODE)
        la      a1, n_vectored
        la      a0, at_vectored
at_vectored:
        ebreak
        call    report

        la      t0, trap_count
        ld      a1, 0(t0)
        la      a0, n_count
        call    print_kd

        # an ecall from S-mode is an SBI call, not a trap: an unknown
        # extension answers SBI_ERR_NOT_SUPPORTED (-2); the value in a1 is
        # unspecified on error (OpenSBI zeroes it), so it is not printed
        li      a7, 0x0a000000          # in no SBI range anyone implements
        li      a6, 0
        li      a0, 0
        li      a1, 0x1234
        ecall
        mv      a1, a0
        la      a0, n_sbi_unknown
        call    print_kd
        la      t0, trap_count
        ld      a1, 0(t0)
        la      a0, n_count
        call    print_kd

        li      a0, 0
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        addi    sp, sp, 32
        ret

# report(a0 = address of the faulting instruction, a1 = name)
report:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        mv      s0, a0
        mv      s1, a1
        mv      a0, s1
        call    puts
        la      a0, s_scause
        call    puts
        la      t0, saved_scause
        ld      a0, 0(t0)
        call    print_hex
        la      a0, s_stval
        call    puts
        la      t0, saved_stval
        ld      a0, 0(t0)
        la      t0, saved_scause        # breakpoint: stval may be 0 or the pc
        ld      t0, 0(t0)
        li      t1, 3
        bne     t0, t1, 2f
        beqz    a0, 1f
        la      t0, saved_sepc
        ld      t0, 0(t0)
        bne     a0, t0, 2f
1:      la      a0, s_zero_or_pc
        call    puts
        j       3f
2:      call    print_hex
3:
        la      a0, s_sepc
        call    puts
        la      t0, saved_sepc
        ld      a0, 0(t0)
        sub     a0, a0, s0
        call    print_dec
        call    newline
        la      t0, saved_sepc          # forget this trap
        sd      zero, 0(t0)
        la      t0, saved_scause
        li      t1, -1
        sd      t1, 0(t0)
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

# Fill x1..x31 (but sp) with patterns, trap, compare.
register_check:
        addi    sp, sp, -144
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        sd      s4, 40(sp)
        sd      s5, 48(sp)
        sd      s6, 56(sp)
        sd      s7, 64(sp)
        sd      s8, 72(sp)
        sd      s9, 80(sp)
        sd      s10, 88(sp)
        sd      s11, 96(sp)
        sd      gp, 104(sp)
        sd      tp, 112(sp)
        li      ra, 0x0101010101010101
        li      gp, 0x0303030303030303
        li      tp, 0x0404040404040404
        li      t0, 0x0505050505050505
        li      t1, 0x0606060606060606
        li      t2, 0x0707070707070707
        li      s0, 0x0808080808080808
        li      s1, 0x0909090909090909
        li      a0, 0x0a0a0a0a0a0a0a0a
        li      a1, 0x0b0b0b0b0b0b0b0b
        li      a2, 0x0c0c0c0c0c0c0c0c
        li      a3, 0x0d0d0d0d0d0d0d0d
        li      a4, 0x0e0e0e0e0e0e0e0e
        li      a5, 0x0f0f0f0f0f0f0f0f
        li      a6, 0x1010101010101010
        li      a7, 0x1111111111111111
        li      s2, 0x1212121212121212
        li      s3, 0x1313131313131313
        li      s4, 0x1414141414141414
        li      s5, 0x1515151515151515
        li      s6, 0x1616161616161616
        li      s7, 0x1717171717171717
        li      s8, 0x1818181818181818
        li      s9, 0x1919191919191919
        li      s10, 0x1a1a1a1a1a1a1a1a
        li      s11, 0x1b1b1b1b1b1b1b1b
        li      t3, 0x1c1c1c1c1c1c1c1c
        li      t4, 0x1d1d1d1d1d1d1d1d
        li      t5, 0x1e1e1e1e1e1e1e1e
        li      t6, 0x1f1f1f1f1f1f1f1f
        .word   0                       # trap
        ebreak                          # and again
        sd      t0, 120(sp)
        la      t0, reg_sum             # x[i] goes to reg_sum[i]
        sd      ra, 8(t0)
        sd      gp, 24(t0)
        sd      tp, 32(t0)
        sd      t1, 48(t0)
        sd      t2, 56(t0)
        sd      s0, 64(t0)
        sd      s1, 72(t0)
        sd      a0, 80(t0)
        sd      a1, 88(t0)
        sd      a2, 96(t0)
        sd      a3, 104(t0)
        sd      a4, 112(t0)
        sd      a5, 120(t0)
        sd      a6, 128(t0)
        sd      a7, 136(t0)
        sd      s2, 144(t0)
        sd      s3, 152(t0)
        sd      s4, 160(t0)
        sd      s5, 168(t0)
        sd      s6, 176(t0)
        sd      s7, 184(t0)
        sd      s8, 192(t0)
        sd      s9, 200(t0)
        sd      s10, 208(t0)
        sd      s11, 216(t0)
        sd      t3, 224(t0)
        sd      t4, 232(t0)
        sd      t5, 240(t0)
        sd      t6, 248(t0)
        ld      t1, 120(sp)
        sd      t1, 40(t0)
        li      s1, 1                   # x1..x31 but sp (x2)
        li      s2, 0
1:      li      t1, 2
        beq     s1, t1, 2f
        la      t0, reg_sum
        slli    t1, s1, 3
        add     t0, t0, t1
        ld      a0, 0(t0)
        li      a1, 0x0101010101010101
        mul     a1, a1, s1
        la      a2, n_register
        call    check
        addi    s2, s2, 1
2:      addi    s1, s1, 1
        li      t1, 32
        blt     s1, t1, 1b
        la      a0, n_registers_checked
        mv      a1, s2
        call    print_kd
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        ld      s4, 40(sp)
        ld      s5, 48(sp)
        ld      s6, 56(sp)
        ld      s7, 64(sp)
        ld      s8, 72(sp)
        ld      s9, 80(sp)
        ld      s10, 88(sp)
        ld      s11, 96(sp)
        ld      gp, 104(sp)
        ld      tp, 112(sp)
        addi    sp, sp, 144
        ret

# The trap entry: must be 4-byte aligned (it is: all code is).
trap_entry:
        csrrw   sp, sscratch, sp        # sp = trap stack, sscratch = interrupted sp
        addi    sp, sp, -FRAME
        sd      ra, 8(sp)
        sd      gp, 24(sp)
        sd      tp, 32(sp)
        sd      t0, 40(sp)
        sd      t1, 48(sp)
        sd      t2, 56(sp)
        sd      s0, 64(sp)
        sd      s1, 72(sp)
        sd      a0, 80(sp)
        sd      a1, 88(sp)
        sd      a2, 96(sp)
        sd      a3, 104(sp)
        sd      a4, 112(sp)
        sd      a5, 120(sp)
        sd      a6, 128(sp)
        sd      a7, 136(sp)
        sd      s2, 144(sp)
        sd      s3, 152(sp)
        sd      s4, 160(sp)
        sd      s5, 168(sp)
        sd      s6, 176(sp)
        sd      s7, 184(sp)
        sd      s8, 192(sp)
        sd      s9, 200(sp)
        sd      s10, 208(sp)
        sd      s11, 216(sp)
        sd      t3, 224(sp)
        sd      t4, 232(sp)
        sd      t5, 240(sp)
        sd      t6, 248(sp)
        csrr    t0, scause
        la      t1, saved_scause
        sd      t0, 0(t1)
        csrr    t0, stval
        la      t1, saved_stval
        sd      t0, 0(t1)
        csrr    t0, sepc
        la      t1, saved_sepc
        sd      t0, 0(t1)
        csrr    t0, sstatus
        la      t1, saved_sstatus
        sd      t0, 0(t1)
        la      t1, trap_count
        ld      t2, 0(t1)
        addi    t2, t2, 1
        sd      t2, 0(t1)
        csrr    t0, sepc                # resume after the instruction
        addi    t0, t0, 4
        csrw    sepc, t0
        ld      ra, 8(sp)
        ld      gp, 24(sp)
        ld      tp, 32(sp)
        ld      t0, 40(sp)
        ld      t1, 48(sp)
        ld      t2, 56(sp)
        ld      s0, 64(sp)
        ld      s1, 72(sp)
        ld      a0, 80(sp)
        ld      a1, 88(sp)
        ld      a2, 96(sp)
        ld      a3, 104(sp)
        ld      a4, 112(sp)
        ld      a5, 120(sp)
        ld      a6, 128(sp)
        ld      a7, 136(sp)
        ld      s2, 144(sp)
        ld      s3, 152(sp)
        ld      s4, 160(sp)
        ld      s5, 168(sp)
        ld      s6, 176(sp)
        ld      s7, 184(sp)
        ld      s8, 192(sp)
        ld      s9, 200(sp)
        ld      s10, 208(sp)
        ld      s11, 216(sp)
        ld      t3, 224(sp)
        ld      t4, 232(sp)
        ld      t5, 240(sp)
        ld      t6, 248(sp)
        addi    sp, sp, FRAME
        csrrw   sp, sscratch, sp
        sret

        .section .rodata
program_name:
        .asciz  "traps"
s_scause:       .asciz ": scause="
s_stval:        .asciz " stval="
s_sepc:         .asciz " sepc=+"
s_zero_or_pc:   .asciz "0-or-pc"
n_zero:         .asciz "illegal 0x00000000"
n_ones:         .asciz "illegal 0xffffffff"
n_reserved:     .asciz "reserved opcode"
n_mstatus:      .asciz "csrr mstatus"
n_mscratch:     .asciz "csrw mscratch"
n_unknown_csr:  .asciz "csrr 0x5ff"
n_cycle_write:  .asciz "csrw cycle"
n_mret:         .asciz "mret"
n_ebreak:       .asciz "ebreak"
n_enc0:        .asciz "slliw shamt 32 (0x0205151b)"
n_enc1:        .asciz "srliw funct7 1 (0x0205551b)"
n_enc2:        .asciz "slli funct6 1 (0x04051513)"
n_enc3:        .asciz "sub-family f3=1 (0x20) (0x40b51533)"
n_enc4:        .asciz "sub-family f3=2 (0x20) (0x40b52533)"
n_enc5:        .asciz "branch f3=2 (0x00b52063)"
n_enc6:        .asciz "load f3=7 (0x00057503)"
n_enc7:        .asciz "store f3=4 (0x00a5c023)"
n_enc8:        .asciz "jalr f3=1 (0x00051067)"
n_enc9:        .asciz "ecall rd=1 (0x000000f3)"
n_enc10:        .asciz "sret rs1=1 (0x10208073)"
n_enc11:        .asciz "lr.w rs2=1 (0x1015252f)"
n_spp:          .asciz "ebreak with SIE=0"
n_spie:         .asciz "ebreak with SIE=1"
n_sstatus_in_trap: .asciz "sstatus in trap (SPP|SPIE|SIE)"
n_sstatus_after:   .asciz "sstatus after sret (SPP|SPIE|SIE)"
n_stvec_vectored:  .asciz "stvec vectored - base"
n_vectored:     .asciz "ebreak, vectored stvec"
n_count:        .asciz "traps taken"
n_sbi_unknown:  .asciz "sbi unknown extension error"
n_register:     .asciz "register preserved"
n_registers_checked: .asciz "registers checked"

        .data
        .align  3
saved_scause:   .dword 0
saved_stval:    .dword 0
saved_sepc:     .dword 0
saved_sstatus:  .dword 0
trap_count:     .dword 0
reg_sum:        .space 256

        .bss
        .align  4
trap_stack:     .space 4096
trap_stack_top:
