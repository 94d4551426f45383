# Interrupts across vCPU threads: hart 1, started with SBI HSM, sends hart 0
# an IPI with SBI sbi_send_ipi; hart 0 sleeps in WFI until its handler sees
# the supervisor software interrupt. Then hart 0 arms the SBI timer 2 ms
# ahead and sleeps until the timer interrupt. Reports both with a ucall.

        .equ    SBI_HSM, 0x48534d
        .equ    SBI_IPI, 0x735049
        .equ    SBI_TIME, 0x54494d45
        .equ    UCALL_EID, 0x08464c54

        .text
        .globl  _start
_start:
        la      sp, stack_top
        la      t0, handler
        csrw    stvec, t0
        li      t0, (1 << 1) | (1 << 5) # SSIE | STIE
        csrw    sie, t0
        csrsi   sstatus, 2              # SIE
        li      a7, SBI_HSM             # start hart 1 at sender
        li      a6, 0
        li      a0, 1
        la      a1, sender
        li      a2, 0
        ecall
        bnez    a0, fail
        la      s0, ipi_seen
        # Check, then sleep, with SIE off: the interrupt can come before the
        # WFI, and its handler must not run between the check and the WFI
        # (WFI still wakes for it, and setting SIE takes it).
1:      csrci   sstatus, 2
        lw      t0, 0(s0)
        bnez    t0, 1f
        wfi
        csrsi   sstatus, 2
        j       1b
1:      csrsi   sstatus, 2
        rdtime  s1                      # arm the timer 2 ms ahead (10 MHz timebase)
        li      t0, 20000
        add     a0, s1, t0
        li      a7, SBI_TIME
        li      a6, 0
        ecall
        la      s0, timer_seen
2:      csrci   sstatus, 2
        lw      t0, 0(s0)
        bnez    t0, 2f
        wfi
        csrsi   sstatus, 2
        j       2b
2:      csrsi   sstatus, 2
        rdtime  a1
        sub     a1, a1, s1              # ticks slept
        la      t0, ipi_seen
        lw      a0, 0(t0)
        li      a6, 2                   # ucall DONE(ipi count, ticks)
        li      a7, UCALL_EID
        ecall
fail:   li      a6, 3
        li      a7, UCALL_EID
        ecall

sender: li      a7, SBI_IPI             # sbi_send_ipi(mask 1, base 0)
        li      a6, 0
        li      a0, 1
        li      a1, 0
        ecall
        bnez    a0, fail
        li      a7, SBI_HSM
        li      a6, 1
        ecall
        j       fail

        .balign 4
handler:
        addi    sp, sp, -16
        sd      t0, 0(sp)
        sd      t1, 8(sp)
        csrr    t0, scause
        bgez    t0, fail                # only interrupts are expected
        slli    t0, t0, 1
        srli    t0, t0, 1
        li      t1, 1
        beq     t0, t1, software
        li      t1, 5
        bne     t0, t1, fail
        la      t0, timer_seen          # timer: count it, disarm (set_timer to the far future)
        li      t1, 1
        sw      t1, 0(t0)
        li      a7, SBI_TIME
        li      a6, 0
        li      a0, -1
        ecall
        j       3f
software:
        csrci   sip, 2                  # acknowledge SSIP
        la      t0, ipi_seen
        li      t1, 1
        amoadd.w zero, t1, (t0)
3:      ld      t0, 0(sp)
        ld      t1, 8(sp)
        addi    sp, sp, 16
        sret

        .data
        .balign 4
ipi_seen:       .word 0
timer_seen:     .word 0
        .bss
        .balign 16
        .space  4096
stack_top:
