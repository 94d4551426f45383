# Supervisor CSRs: round trips through sscratch, sepc, scause, stval, stvec,
# sie, sstatus, scounteren and senvcfg with every Zicsr instruction form
# (csrrw/s/c and the immediate forms, rd = x0 and rs1 = x0 variants), the
# WARL behaviour both QEMU and faultline share (stvec reserved modes,
# read-only sstatus.UXL, writable bits of sie), the counters'
# readability, and a supervisor software interrupt raised through sip.SSIP:
# held off by sstatus.SIE and sie.SSIE, taken in direct and vectored mode,
# ending wfi without a trap while SIE is off, and taken as soon as an sret
# sets SIE from SPIE.
#
# sstatus is printed masked to the fields faultline implements (QEMU also
# has FS/VS/SD for its FPU); sepc/stvec hold valid addresses only (wider
# values are WARL and differ legitimately). Not printed: sepc after writing
# an odd value (QEMU 7.2 keeps bit 0, which the spec says is always zero)
# and sstatus.SPIE at entry (OpenSBI leaves it set; nothing defines it).

        .equ    SSTATUS_KNOWN, 0x3000c0122     # UXL, MXR, SUM, SPP, SPIE, SIE

        .text
main:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        la      t0, trap_entry
        csrw    stvec, t0

        # --- sscratch with every instruction form ---
        li      t0, 0x0123456789abcdef
        csrw    sscratch, t0
        li      t1, -1
        csrrw   a1, sscratch, t1        # old value out, all ones in
        la      a0, n_csrrw_old
        call    print_kv
        csrr    a1, sscratch
        la      a0, n_csrrw_new
        call    print_kv
        li      t0, 0xff00ff00ff00ff00
        csrrc   a1, sscratch, t0
        la      a0, n_csrrc_old
        call    print_kv
        csrr    a1, sscratch
        la      a0, n_csrrc_new
        call    print_kv
        li      t0, 0x8000000000000001
        csrrs   a1, sscratch, t0
        csrr    a1, sscratch
        la      a0, n_csrrs_new
        call    print_kv
        csrrwi  a1, sscratch, 0x15
        csrr    a1, sscratch
        la      a0, n_csrrwi
        call    print_kv
        csrrsi  a1, sscratch, 0x0a
        csrr    a1, sscratch
        la      a0, n_csrrsi
        call    print_kv
        csrrci  a1, sscratch, 0x11
        csrr    a1, sscratch
        la      a0, n_csrrci
        call    print_kv
        csrrs   a1, sscratch, zero      # rs1 = x0: read only
        la      a0, n_csrrs_x0
        call    print_kv
        li      t0, 0x5555
        csrrw   zero, sscratch, t0      # rd = x0: write only
        csrr    a1, sscratch
        la      a0, n_csrrw_x0
        call    print_kv
        li      t0, 0x77
        csrrw   t0, sscratch, t0        # rd = rs1
        csrr    a1, sscratch
        add     a1, a1, t0
        la      a0, n_csrrw_same
        call    print_kv

        # --- sepc, scause, stval ---
        li      t0, 0x80201004
        csrw    sepc, t0
        csrr    a1, sepc
        la      a0, n_sepc
        call    print_kv
        li      t0, -4
        csrw    sepc, t0
        csrr    a1, sepc
        la      a0, n_sepc_neg
        call    print_kv
        li      t0, 0x8000000000000005
        csrw    scause, t0
        csrr    a1, scause
        la      a0, n_scause
        call    print_kv
        li      t0, 0xfedcba9876543210
        csrw    stval, t0
        csrr    a1, stval
        la      a0, n_stval
        call    print_kv

        # --- stvec: MODE 0 and 1 stick, 2 and 3 are reserved ---
        la      s0, trap_entry
        csrw    stvec, s0
        csrr    a1, stvec
        sub     a1, a1, s0
        la      a0, n_stvec_direct
        call    print_kv
        ori     t0, s0, 1
        csrw    stvec, t0
        csrr    a1, stvec
        sub     a1, a1, s0
        la      a0, n_stvec_vectored
        call    print_kv
        ori     t0, s0, 2
        addi    t0, t0, 64
        csrw    stvec, t0
        csrr    a1, stvec
        sub     a1, a1, s0
        la      a0, n_stvec_mode2
        call    print_kv
        ori     t0, s0, 3
        addi    t0, t0, 128
        csrw    stvec, t0
        csrr    a1, stvec
        sub     a1, a1, s0
        la      a0, n_stvec_mode3
        call    print_kv
        csrw    stvec, s0

        # --- sie: only SSIE, STIE and SEIE exist ---
        li      t0, -1
        csrw    sie, t0
        csrr    a1, sie
        la      a0, n_sie_all
        call    print_kv
        csrci   sie, 2
        csrr    a1, sie
        la      a0, n_sie_clear
        call    print_kv
        csrw    sie, zero
        csrr    a1, sie
        la      a0, n_sie_zero
        call    print_kv

        # --- sstatus (SPIE at entry is the firmware's business: clear it) ---
        csrci   sstatus, 0x2
        li      t0, 0xc0120
        csrc    sstatus, t0
        csrr    a1, sstatus
        li      t0, SSTATUS_KNOWN
        and     a1, a1, t0
        la      a0, n_sstatus_boot
        call    print_kv
        li      t0, 0xc0120             # MXR, SUM, SPP, SPIE on
        csrs    sstatus, t0
        csrr    a1, sstatus
        li      t0, SSTATUS_KNOWN
        and     a1, a1, t0
        la      a0, n_sstatus_set
        call    print_kv
        li      t0, 0x300000000         # UXL is read-only
        csrc    sstatus, t0
        csrr    a1, sstatus
        li      t0, SSTATUS_KNOWN
        and     a1, a1, t0
        la      a0, n_sstatus_uxl
        call    print_kv
        li      t0, 0xc0120
        csrc    sstatus, t0
        csrr    a1, sstatus
        li      t0, SSTATUS_KNOWN
        and     a1, a1, t0
        la      a0, n_sstatus_clear
        call    print_kv

        # --- scounteren, senvcfg ---
        li      t0, 7
        csrw    scounteren, t0
        csrr    a1, scounteren
        la      a0, n_scounteren7
        call    print_kv
        csrwi   scounteren, 2
        csrr    a1, scounteren
        la      a0, n_scounteren2
        call    print_kv
        csrw    scounteren, zero
        csrr    a1, scounteren
        la      a0, n_scounteren0
        call    print_kv
        csrwi   senvcfg, 1              # FIOM
        csrr    a1, senvcfg
        andi    a1, a1, 1
        la      a0, n_senvcfg
        call    print_kv
        csrw    senvcfg, zero

        # --- satp: Bare mode reads back as zero ---
        csrw    satp, zero
        sfence.vma
        csrr    a1, satp
        la      a0, n_satp
        call    print_kv

        # --- counters are readable in S-mode and do not go backwards ---
        rdcycle s0
        rdinstret s1
        li      t0, 1000
1:      addi    t0, t0, -1
        bnez    t0, 1b
        rdcycle t1
        rdinstret t2
        sltu    a1, t1, s0
        sltu    t3, t2, s1
        or      a1, a1, t3
        la      a0, n_counters_backwards
        call    print_kd
        rdtime  s0
        rdtime  t1
        sltu    a1, t1, s0
        la      a0, n_time_backwards
        call    print_kd

        call    software_interrupts

        la      t0, exceptions
        ld      a1, 0(t0)
        la      a0, n_exceptions
        call    print_kd
        li      a0, 0
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

software_interrupts:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        # pending, but SSIE clear: sip shows it, nothing is taken
        csrw    sie, zero
        csrsi   sip, 2
        csrr    a1, sip
        andi    a1, a1, 0x222
        la      a0, n_sip_pending
        call    print_kv
        csrsi   sstatus, 2              # SIE on: still masked by sie
        nop
        csrci   sstatus, 2
        la      t0, interrupts
        ld      a1, 0(t0)
        la      a0, n_taken_masked
        call    print_kd
        # SSIE on, SIE off: wfi returns at once, no trap
        csrsi   sie, 2
        wfi
        la      t0, interrupts
        ld      a1, 0(t0)
        la      a0, n_taken_wfi
        call    print_kd
        # SIE on: taken right after the csrsi, sepc = the next instruction
        la      s0, after_enable
        csrsi   sstatus, 2
after_enable:
        nop
        csrci   sstatus, 2
        la      t0, interrupts
        ld      a1, 0(t0)
        la      a0, n_taken
        call    print_kd
        call    report_interrupt
        csrr    a1, sip
        andi    a1, a1, 0x222
        la      a0, n_sip_after
        call    print_kv
        # vectored: the interrupt enters at BASE + 4 * 1
        la      t0, vector_table
        ori     t0, t0, 1
        csrw    stvec, t0
        csrsi   sip, 2
        la      s0, after_vectored
        csrsi   sstatus, 2
after_vectored:
        nop
        csrci   sstatus, 2
        la      t0, vectored_hits
        ld      a1, 0(t0)
        la      a0, n_vectored_hits
        call    print_kd
        call    report_interrupt
        la      t0, trap_entry
        csrw    stvec, t0
        # pending and enabled in sie, SIE off: sret with SPIE = 1 turns SIE
        # on and the interrupt is taken before the sret's target runs
        csrsi   sip, 2
        la      s0, after_sret
        csrw    sepc, s0
        li      t0, 0x120               # SPP = S, SPIE = 1
        csrs    sstatus, t0
        sret
after_sret:
        nop
        csrci   sstatus, 2
        la      t0, interrupts
        ld      a1, 0(t0)
        la      a0, n_taken_sret
        call    print_kd
        call    report_interrupt
        csrw    sie, zero
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        addi    sp, sp, 16
        ret

# Prints the last interrupt's scause, its sepc relative to s0, and sstatus
# as the handler saw it (SPP|SPIE|SIE).
report_interrupt:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        la      t0, saved_scause
        ld      a1, 0(t0)
        la      a0, n_int_scause
        call    print_kv
        la      t0, saved_sepc
        ld      a1, 0(t0)
        sub     a1, a1, s0
        la      a0, n_int_sepc
        call    print_kd
        la      t0, saved_sstatus
        ld      a1, 0(t0)
        andi    a1, a1, 0x122
        la      a0, n_int_sstatus
        call    print_kv
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# The vector table: exceptions at +0, supervisor software interrupt at +4.
        .align  2
vector_table:
        j       trap_entry
        j       vectored_ssi
        j       trap_entry
        j       trap_entry
        j       trap_entry
        j       trap_entry
        j       trap_entry
        j       trap_entry
        j       trap_entry
        j       trap_entry

vectored_ssi:
        addi    sp, sp, -16
        sd      t0, 0(sp)
        sd      t1, 8(sp)
        la      t0, vectored_hits
        ld      t1, 0(t0)
        addi    t1, t1, 1
        sd      t1, 0(t0)
        ld      t0, 0(sp)
        ld      t1, 8(sp)
        addi    sp, sp, 16
        j       trap_entry

# Handles exceptions (count, skip the instruction) and the software
# interrupt (count, clear SSIP). Runs on the interrupted stack, below sp.
trap_entry:
        addi    sp, sp, -64
        sd      t0, 0(sp)
        sd      t1, 8(sp)
        sd      t2, 16(sp)
        csrr    t0, scause
        la      t1, saved_scause
        sd      t0, 0(t1)
        csrr    t1, sepc
        la      t2, saved_sepc
        sd      t1, 0(t2)
        csrr    t1, sstatus
        la      t2, saved_sstatus
        sd      t1, 0(t2)
        bltz    t0, 1f                  # interrupt bit
        la      t1, exceptions
        ld      t2, 0(t1)
        addi    t2, t2, 1
        sd      t2, 0(t1)
        csrr    t1, sepc
        addi    t1, t1, 4
        csrw    sepc, t1
        j       2f
1:      csrci   sip, 2
        la      t1, interrupts
        ld      t2, 0(t1)
        addi    t2, t2, 1
        sd      t2, 0(t1)
2:      ld      t0, 0(sp)
        ld      t1, 8(sp)
        ld      t2, 16(sp)
        addi    sp, sp, 64
        sret

        .section .rodata
program_name:
        .asciz  "csr"
n_csrrw_old:    .asciz "csrrw old"
n_csrrw_new:    .asciz "csrrw new"
n_csrrc_old:    .asciz "csrrc old"
n_csrrc_new:    .asciz "csrrc new"
n_csrrs_new:    .asciz "csrrs new"
n_csrrwi:       .asciz "csrrwi 0x15"
n_csrrsi:       .asciz "csrrsi 0x0a"
n_csrrci:       .asciz "csrrci 0x11"
n_csrrs_x0:     .asciz "csrrs x0 (read)"
n_csrrw_x0:     .asciz "csrrw rd=x0"
n_csrrw_same:   .asciz "csrrw rd=rs1 (old + new)"
n_sepc:         .asciz "sepc <- 0x80201004"
n_sepc_neg:     .asciz "sepc <- -4"
n_scause:       .asciz "scause"
n_stval:        .asciz "stval"
n_stvec_direct: .asciz "stvec direct - base"
n_stvec_vectored: .asciz "stvec vectored - base"
n_stvec_mode2:  .asciz "stvec after mode 2 - base"
n_stvec_mode3:  .asciz "stvec after mode 3 - base"
n_sie_all:      .asciz "sie <- -1"
n_sie_clear:    .asciz "sie & ~SSIE"
n_sie_zero:     .asciz "sie <- 0"
n_sstatus_boot: .asciz "sstatus cleared"
n_sstatus_set:  .asciz "sstatus |= MXR|SUM|SPP|SPIE"
n_sstatus_uxl:  .asciz "sstatus &= ~UXL"
n_sstatus_clear: .asciz "sstatus &= ~(MXR|SUM|SPP|SPIE)"
n_scounteren7:  .asciz "scounteren <- 7"
n_scounteren2:  .asciz "scounteren <- 2"
n_scounteren0:  .asciz "scounteren <- 0"
n_senvcfg:      .asciz "senvcfg.FIOM"
n_satp:         .asciz "satp"
n_counters_backwards: .asciz "cycle or instret went backwards"
n_time_backwards: .asciz "time went backwards"
n_sip_pending:  .asciz "sip with SSIP set"
n_taken_masked: .asciz "interrupts taken while SSIE clear"
n_taken_wfi:    .asciz "interrupts taken after wfi with SIE clear"
n_taken:        .asciz "interrupts taken after SIE set"
n_sip_after:    .asciz "sip after the handler"
n_taken_sret:   .asciz "interrupts taken after sret"
n_vectored_hits: .asciz "vectored software interrupt entries"
n_int_scause:   .asciz "  scause"
n_int_sepc:     .asciz "  sepc - next instruction"
n_int_sstatus:  .asciz "  sstatus in handler (SPP|SPIE|SIE)"
n_exceptions:   .asciz "exceptions"

        .data
        .align  3
saved_scause:   .dword 0
saved_sepc:     .dword 0
saved_sstatus:  .dword 0
exceptions:     .dword 0
interrupts:     .dword 0
vectored_hits:  .dword 0
