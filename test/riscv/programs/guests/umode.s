# A tiny kernel and its user programs: the kernel drops to U-mode with
# sret (sstatus.SPP = 0), and U-mode comes back with ecall (scause 8),
# which the S-mode trap handler serves as a system call: 1 putchar, 2 exit,
# 3 add-and-double. The user programs print through the same runtime
# routines (their putchar's ecall lands in the kernel instead of the SBI),
# then try what U-mode may not do: read sstatus, sret, wfi, sfence.vma,
# write stvec, read sscratch, read cycle and instret with scounteren clear
# (allowed once it is set) and ebreak; the kernel reports each trap (sepc
# relative to the faulting instruction) and skips it. A misaligned load in
# U-mode is emulated transparently as in S-mode. Not tried: reading time
# with scounteren.TM clear, which must trap but which OpenSBI 1.1 emulates
# for U-mode without checking scounteren.

        .equ    FRAME, 256
        .equ    SYS_PUTCHAR, 1
        .equ    SYS_EXIT, 2
        .equ    SYS_ADD2, 3

        .text
main:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        la      t0, kernel_trap
        csrw    stvec, t0
        csrw    scounteren, zero

        la      a0, user_hello
        la      a1, user_stack_top
        call    run_user
        mv      a1, a0
        la      a0, n_exit1
        call    print_kd

        la      a0, user_forbidden
        la      a1, user_stack_top
        call    run_user
        mv      a1, a0
        la      a0, n_exit2
        call    print_kd

        li      t0, 7                   # U-mode may now read the counters
        csrw    scounteren, t0
        la      a0, user_compute
        la      a1, user_stack_top
        call    run_user
        mv      a1, a0
        la      a0, n_exit3
        call    print_kd

        la      t0, syscalls
        ld      a1, 0(t0)
        la      a0, n_syscalls
        call    print_kd
        la      t0, user_traps
        ld      a1, 0(t0)
        la      a0, n_user_traps
        call    print_kd
        csrr    a1, sstatus             # back in S-mode for good: SPP is 0
        andi    a1, a1, 0x100
        la      a0, n_spp_now
        call    print_kv
        li      a0, 0
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# run_user(a0 = entry, a1 = user stack) -> exit code. Saves the kernel's
# callee-saved state; the exit system call restores it and returns here.
run_user:
        la      t0, kernel_context
        sd      ra, 0(t0)
        sd      sp, 8(t0)
        sd      s0, 16(t0)
        sd      s1, 24(t0)
        sd      s2, 32(t0)
        sd      s3, 40(t0)
        sd      s4, 48(t0)
        sd      s5, 56(t0)
        sd      s6, 64(t0)
        sd      s7, 72(t0)
        sd      s8, 80(t0)
        sd      s9, 88(t0)
        sd      s10, 96(t0)
        sd      s11, 104(t0)
        la      t0, trap_stack_top
        csrw    sscratch, t0
        csrw    sepc, a0
        li      t0, 0x100               # SPP = 0: return to U-mode
        csrc    sstatus, t0
        li      t0, 0x20                # SPIE = 1
        csrs    sstatus, t0
        mv      sp, a1
        li      ra, 0
        li      a0, 0
        li      a1, 0
        sret

kernel_trap:
        csrrw   sp, sscratch, sp        # kernel stack; sscratch = user sp
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
        mv      s0, sp                  # the frame
        csrr    s1, scause
        li      t0, 8
        bne     s1, t0, other_trap
        # --- a system call ---
        csrr    t0, sstatus             # a trap from U-mode leaves SPP = 0
        andi    t0, t0, 0x100
        bnez    t0, bad_spp
        csrr    t0, stval
        bnez    t0, bad_stval
        la      t0, syscalls
        ld      t1, 0(t0)
        addi    t1, t1, 1
        sd      t1, 0(t0)
        ld      a7, 136(s0)
        ld      a0, 80(s0)
        li      t0, SYS_PUTCHAR
        beq     a7, t0, sys_putchar
        li      t0, SYS_EXIT
        beq     a7, t0, sys_exit
        li      t0, SYS_ADD2
        beq     a7, t0, sys_add2
        li      t0, -38                 # ENOSYS
        sd      t0, 80(s0)
        j       return_to_user
sys_putchar:
        call    putchar                 # S-mode: this one is the SBI call
        sd      zero, 80(s0)
        j       return_to_user
sys_add2:
        ld      a1, 88(s0)
        add     a0, a0, a1
        slli    a0, a0, 1
        sd      a0, 80(s0)
        j       return_to_user
sys_exit:
        la      t0, kernel_context      # a0 = exit code
        ld      ra, 0(t0)
        ld      sp, 8(t0)
        ld      s0, 16(t0)
        ld      s1, 24(t0)
        ld      s2, 32(t0)
        ld      s3, 40(t0)
        ld      s4, 48(t0)
        ld      s5, 56(t0)
        ld      s6, 64(t0)
        ld      s7, 72(t0)
        ld      s8, 80(t0)
        ld      s9, 88(t0)
        ld      s10, 96(t0)
        ld      s11, 104(t0)
        ret

other_trap:                             # report, then skip the instruction
        la      a0, s_user_trap
        call    puts
        mv      a0, s1
        call    print_hex
        la      a0, s_stval
        call    puts
        csrr    a0, stval
        li      t0, 3                   # breakpoint: stval may be 0 or the pc
        bne     s1, t0, 2f
        beqz    a0, 1f
        csrr    t0, sepc
        bne     a0, t0, 2f
1:      la      a0, s_zero_or_pc
        call    puts
        j       3f
2:      call    print_hex
3:      la      a0, s_sepc              # relative to the user's s0
        call    puts
        csrr    a0, sepc
        ld      t0, 64(s0)
        sub     a0, a0, t0
        call    print_dec
        la      a0, s_spp
        call    puts
        csrr    a0, sstatus
        srli    a0, a0, 8
        andi    a0, a0, 1
        call    print_udec
        call    newline
        la      t0, user_traps
        ld      t1, 0(t0)
        addi    t1, t1, 1
        sd      t1, 0(t0)
        j       return_to_user

bad_spp:
        la      a0, s_bad_spp
        call    puts
        j       return_to_user
bad_stval:
        la      a0, s_bad_stval
        call    puts

return_to_user:
        csrr    t0, sepc
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

# ---- user programs (run in U-mode) ----

user_hello:
        la      a0, s_hello
        call    puts
        li      a0, 12345               # the runtime's decimal printer, from U
        call    print_dec
        call    newline
        li      a0, 7
        li      a7, SYS_EXIT
        ecall
1:      j       1b

user_forbidden:
        la      s0, at_sstatus          # s0: the attempt, for the kernel's report
at_sstatus:
        csrr    a0, sstatus
        la      s0, at_sret
at_sret:
        sret
        la      s0, at_wfi
at_wfi:
        wfi
        la      s0, at_sfence
at_sfence:
        sfence.vma
        la      s0, at_cycle
at_cycle:
        rdcycle a0
        la      s0, at_rdinstret
at_rdinstret:
        rdinstret a0
        la      s0, at_sscratch
at_sscratch:
        csrr    a0, sscratch
        la      s0, at_ebreak
at_ebreak:
        ebreak
        la      s0, at_stvec
at_stvec:
        csrw    stvec, zero
        li      a7, 99                  # an unknown system call
        ecall
        mv      a1, a0
        la      a0, n_enosys
        call    print_kd
        li      a0, 0
        li      a7, SYS_EXIT
        ecall
1:      j       1b

user_compute:
        li      s0, 0                   # sum of add2(i, i + 1) for i < 100
        li      s1, 0
1:      mv      a0, s1
        addi    a1, s1, 1
        li      a7, SYS_ADD2
        ecall
        add     s0, s0, a0
        addi    s1, s1, 1
        li      t0, 100
        blt     s1, t0, 1b
        mv      a1, s0
        la      a0, n_sum
        call    print_kd
        rdcycle a0                      # allowed by scounteren: no trap
        rdtime  a0
        rdinstret a0
        la      t0, user_data           # a misaligned load from U-mode
        ld      a1, 3(t0)
        la      a0, n_misaligned
        call    print_kv
        li      a0, 3
        li      a7, SYS_EXIT
        ecall
1:      j       1b

        .section .rodata
program_name:
        .asciz  "umode"
s_hello:        .asciz "hello from U-mode: "
s_user_trap:    .asciz "U-mode trap: scause="
s_stval:        .asciz " stval="
s_spp:          .asciz " spp="
s_zero_or_pc:   .asciz "0-or-pc"
s_bad_spp:      .asciz "FAIL: SPP set on a trap from U-mode\n"
s_bad_stval:    .asciz "FAIL: stval not 0 on ecall\n"
s_sepc:         .asciz " sepc=+"
n_exit1:        .asciz "user_hello exited"
n_exit2:        .asciz "user_forbidden exited"
n_exit3:        .asciz "user_compute exited"
n_syscalls:     .asciz "system calls"
n_user_traps:   .asciz "other traps from U-mode"
n_spp_now:      .asciz "sstatus.SPP in the kernel"
n_enosys:       .asciz "unknown system call returned"
n_sum:          .asciz "sum of add2"
n_misaligned:   .asciz "misaligned ld in U-mode"
        .align  3
user_data:
        .dword  0x0706050403020100, 0x0f0e0d0c0b0a0908

        .data
        .align  3
kernel_context: .space 112
syscalls:       .dword 0
user_traps:     .dword 0

        .bss
        .align  4
trap_stack:     .space 8192
trap_stack_top:
user_stack:     .space 8192
user_stack_top:
