# Sv39 paging (satp MODE 8). The program builds its own three-level page
# table in .bss and turns translation on with the kernel identity-mapped by
# a 1 GiB gigapage (VA = PA over 0x80000000, RWX, A and D set, not U), so
# that it keeps running. Around it:
#
#   root[1]    1 GiB RW alias of 0x80000000 at VA 0x40000000
#   root[3]    a misaligned gigapage (PPN[1] != 0)
#   root[4]    a level-1 table at VA 0x1_0000_0000:
#     l1[0]      2 MiB RW alias of 0x80200000 (where the program is loaded)
#     l1[1]      a level-0 table: 4 KiB pages from VA_PAGES, one per entry
#     l1[2]      a misaligned megapage (PPN[0] != 0)
#   root[256]  1 GiB RX alias of 0x80000000 at VA 0xffffffc0_00000000
#   root[511]  V = 0
#
# It writes through one mapping and reads through the others; takes load,
# store/AMO and instruction page faults (scause, stval = the faulting virtual
# address, sepc relative to the faulting instruction; the handler skips the
# instruction, or for a fetch fault resumes at ra) for V = 0, W without R,
# W+X without R, writes to a read-only page, fetches from pages without X,
# X-only pages with MXR clear and set, U pages from S-mode with SUM clear
# and set, a pointer PTE at level 0, misaligned superpages, reserved PTE
# bits 63:54 and non-canonical addresses; checks the hardware A/D updates
# (QEMU 7.2 sets A and D in the PTE instead of faulting), remapping with
# sfence.vma, AMOs and LR/SC through paged mappings, code written through
# an alias and run through another after fence.i, and a U-mode function
# running from a U page with a U stack. satp is written with MODE Sv39 and
# ASID 0, with unsupported modes (no effect) and back with Bare.
#
# Left alone on purpose: ASIDs other than 0 (QEMU keeps 16 ASID bits,
# faultline none), MODE 9 and 10 (QEMU 7.2 implements Sv48 and Sv57),
# whether a changed PTE is seen before sfence.vma, the A bit of a PTE
# nobody accessed yet (A may be set speculatively), and AMOs where a load
# would fault (QEMU 7.2 runs an AMO as a load and a store and reports a load
# page fault there, not the store/AMO page fault due). Nothing is mapped to
# or read from outside RAM or inside OpenSBI's region on purpose.

        .equ    FRAME, 256
        .equ    SYS_EXIT, 2
        .equ    LOG_MAX, 8
        .equ    MAX_TRAPS, 200

        .equ    PTE_V, 0x01
        .equ    PTE_R, 0x02
        .equ    PTE_W, 0x04
        .equ    PTE_X, 0x08
        .equ    PTE_U, 0x10
        .equ    PTE_A, 0x40
        .equ    PTE_D, 0x80
        .equ    F_RWX, 0xcf             # V R W X A D
        .equ    F_RW, 0xc7              # V R W A D
        .equ    F_RX, 0x4b              # V R X A
        .equ    F_R, 0x43               # V R A
        .equ    F_X, 0x49               # V X A

        .equ    SSTATUS_SUM, 0x40000
        .equ    SSTATUS_MXR, 0x80000
        .equ    SATP_SV39, 0x8000000000000000

        .equ    RAM, 0x80000000
        .equ    KERNEL_BASE, 0x80200000
        .equ    VA_G1, 0x40000000
        .equ    VA_MISALIGNED_GIGA, 0xc0000000
        .equ    VA_MEGA, 0x100000000
        .equ    VA_PAGES, 0x100200000
        .equ    VA_MISALIGNED_MEGA, 0x100400000
        .equ    VA_HIGH, 0xffffffc000000000
        .equ    VA_ROOT_INVALID, 0xffffffffc0000000
        .equ    VA_ROOT_EMPTY, 0x200000000          # root[8], never written

        # level-0 entries (VA_PAGES + index * 4 KiB)
        .equ    P_DATA, 0               # page_a, RW
        .equ    P_RO, 1                 # page_b, R
        .equ    P_INVALID, 2            # page_a, RW but V = 0
        .equ    P_WONLY, 3              # page_a, W without R: reserved
        .equ    P_WX, 4                 # page_a, W+X without R: reserved
        .equ    P_XONLY, 5              # xonly_page, X only
        .equ    P_NOX, 6                # xonly_page, R only
        .equ    P_UDATA, 7              # u_data, U RW
        .equ    P_UCODE, 8              # user_page, U RX
        .equ    P_USTACK, 9             # u_stack, U RW
        .equ    P_AD, 10                # page_c, RW with A = D = 0
        .equ    P_AD_AMO, 11            # page_d, RW with A = D = 0
        .equ    P_X_NOA, 12             # xonly_page, X with A = 0
        .equ    P_SWAP, 13              # page_a, remapped while running
        .equ    P_PTR, 14               # V only: a pointer at level 0
        .equ    P_RSV54, 15             # page_a, RW with bit 54 set
        .equ    P_RSV63, 16             # page_a, RW with bit 63 (N) set
        .equ    P_PBMT, 17              # page_a, RW with bit 61 (PBMT) set
        .equ    P_LATE, 18              # page_b, RW, V = 0 until later

        .equ    VA_DATA, VA_PAGES + P_DATA * 0x1000
        .equ    VA_RO, VA_PAGES + P_RO * 0x1000
        .equ    VA_INVALID, VA_PAGES + P_INVALID * 0x1000
        .equ    VA_WONLY, VA_PAGES + P_WONLY * 0x1000
        .equ    VA_WX, VA_PAGES + P_WX * 0x1000
        .equ    VA_XONLY, VA_PAGES + P_XONLY * 0x1000
        .equ    VA_NOX, VA_PAGES + P_NOX * 0x1000
        .equ    VA_UDATA, VA_PAGES + P_UDATA * 0x1000
        .equ    VA_UCODE, VA_PAGES + P_UCODE * 0x1000
        .equ    VA_USTACK, VA_PAGES + P_USTACK * 0x1000
        .equ    VA_AD, VA_PAGES + P_AD * 0x1000
        .equ    VA_AD_AMO, VA_PAGES + P_AD_AMO * 0x1000
        .equ    VA_X_NOA, VA_PAGES + P_X_NOA * 0x1000
        .equ    VA_SWAP, VA_PAGES + P_SWAP * 0x1000
        .equ    VA_PTR, VA_PAGES + P_PTR * 0x1000
        .equ    VA_RSV54, VA_PAGES + P_RSV54 * 0x1000
        .equ    VA_RSV63, VA_PAGES + P_RSV63 * 0x1000
        .equ    VA_PBMT, VA_PAGES + P_PBMT * 0x1000
        .equ    VA_LATE, VA_PAGES + P_LATE * 0x1000
        .equ    VA_L0_EMPTY, VA_PAGES + 511 * 0x1000  # l0[511], never written

        .text
main:
        addi    sp, sp, -64
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        la      t0, trap_stack_top
        csrw    sscratch, t0
        la      t0, trap_entry
        csrw    stvec, t0

        csrr    a1, satp
        la      a0, n_satp_entry
        call    print_kv

        # the program must fit in the 2 MiB the megapage aliases
        la      a0, program_end
        li      t0, KERNEL_BASE
        sub     a0, a0, t0
        li      t0, 0x200000
        sltu    a0, a0, t0
        li      a1, 1
        la      a2, n_fits
        call    check

        call    fill_pages
        call    build_tables

        # ---- translation on
        la      s0, root_pt
        srli    s0, s0, 12
        li      t0, SATP_SV39
        or      s0, s0, t0              # s0 = Sv39, ASID 0, the root's PPN
        sfence.vma
        csrw    satp, s0
        sfence.vma
        csrr    s1, satp
        srli    a1, s1, 44
        la      a0, n_satp_mode_asid
        call    print_kv
        mv      a0, s1
        mv      a1, s0
        la      a2, n_satp_readback
        call    check
        la      a0, s_paging_on
        call    puts

        call    test_aliases
        call    test_faults
        call    test_mxr_sum
        call    test_fetch
        call    test_accessed_dirty
        call    test_sfence
        call    test_atomics
        call    test_code_through_alias
        call    test_user

        # ---- satp: unsupported modes change nothing, then back to Bare
        la      t0, root_pt
        srli    t0, t0, 12
        li      t1, 0x1000000000000000  # MODE 1 (reserved)
        or      t1, t1, t0
        csrw    satp, t1
        csrr    a0, satp
        mv      a1, s0
        la      a2, n_satp_mode1
        call    check
        la      t0, root_pt
        srli    t0, t0, 12
        li      t1, 0xf000000000000000  # MODE 15 (custom)
        or      t1, t1, t0
        csrw    satp, t1
        csrr    a0, satp
        mv      a1, s0
        la      a2, n_satp_mode15
        call    check
        csrr    a1, satp
        srli    a1, a1, 44
        la      a0, n_satp_after_unsupported
        call    print_kv

        csrw    satp, zero
        sfence.vma
        csrr    a1, satp
        la      a0, n_satp_bare
        call    print_kv
        la      t0, root_pt             # MODE 1 while Bare: still Bare
        srli    t0, t0, 12
        li      t1, 0x1000000000000000
        or      t1, t1, t0
        csrw    satp, t1
        csrr    a1, satp
        la      a0, n_satp_bare_mode1
        call    print_kv
        la      t0, page_a              # what was written through the mappings
        ld      a1, 0x10(t0)
        la      a0, n_bare_page_a
        call    print_kv
        la      t0, page_a
        ld      a1, 0x40(t0)
        la      a0, n_bare_page_a_amo
        call    print_kv

        la      t0, total_traps
        ld      a1, 0(t0)
        la      a0, n_total_traps
        call    print_kd

        li      a0, 0
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        addi    sp, sp, 64
        ret

# ---- set-up (translation still off)

# fill(a0 = page, a1 = tag): every doubleword = tag | its offset
fill:
        li      t0, 0
        li      t1, 4096
1:      or      t2, a1, t0
        add     t3, a0, t0
        sd      t2, 0(t3)
        addi    t0, t0, 8
        blt     t0, t1, 1b
        ret

fill_pages:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        la      a0, page_a
        li      a1, 0xaaaa000000000000
        call    fill
        la      a0, page_b
        li      a1, 0xbbbb000000000000
        call    fill
        la      a0, page_c
        li      a1, 0xcccc000000000000
        call    fill
        la      a0, page_d
        li      a1, 0xdddd000000000000
        call    fill
        la      a0, u_data
        li      a1, 0x5555000000000000
        call    fill
        la      a0, u_stack
        li      a1, 0
        call    fill
        la      a0, root_pt
        li      a1, 0
        call    fill
        la      a0, l1_pt
        li      a1, 0
        call    fill
        la      a0, l0_pt
        li      a1, 0
        call    fill
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# fill() leaves offsets in the tables: clear them again
clear_page:
        li      t0, 0
        li      t1, 4096
1:      add     t3, a0, t0
        sd      zero, 0(t3)
        addi    t0, t0, 8
        blt     t0, t1, 1b
        ret

# set_pte(a0 = table, a1 = index, a2 = physical address, a3 = flags and
# high bits) -> a0 = the PTE written
set_pte:
        srli    a2, a2, 12
        slli    a2, a2, 10
        or      a2, a2, a3
        slli    a1, a1, 3
        add     a0, a0, a1
        sd      a2, 0(a0)
        mv      a0, a2
        ret

build_tables:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        la      a0, root_pt
        call    clear_page
        la      a0, l1_pt
        call    clear_page
        la      a0, l0_pt
        call    clear_page

        la      a0, root_pt
        li      a1, 1
        li      a2, RAM
        li      a3, F_RW
        call    set_pte
        la      a0, root_pt
        li      a1, 2
        li      a2, RAM
        li      a3, F_RWX
        call    set_pte
        la      a0, root_pt
        li      a1, 3
        li      a2, KERNEL_BASE
        li      a3, F_RW
        call    set_pte
        la      a0, root_pt
        li      a1, 4
        la      a2, l1_pt
        li      a3, PTE_V
        call    set_pte
        la      a0, root_pt
        li      a1, 256
        li      a2, RAM
        li      a3, F_RX
        call    set_pte
        la      a0, root_pt
        li      a1, 511
        li      a2, RAM
        li      a3, F_RWX - PTE_V
        call    set_pte

        la      a0, l1_pt
        li      a1, 0
        li      a2, KERNEL_BASE
        li      a3, F_RW
        call    set_pte
        la      a0, l1_pt
        li      a1, 1
        la      a2, l0_pt
        li      a3, PTE_V
        call    set_pte
        la      a0, l1_pt
        li      a1, 2
        li      a2, KERNEL_BASE + 0x1000
        li      a3, F_RW
        call    set_pte

        la      a0, l0_pt
        li      a1, P_DATA
        la      a2, page_a
        li      a3, F_RW
        call    set_pte
        la      a0, l0_pt
        li      a1, P_RO
        la      a2, page_b
        li      a3, F_R
        call    set_pte
        la      a0, l0_pt
        li      a1, P_INVALID
        la      a2, page_a
        li      a3, F_RW - PTE_V
        call    set_pte
        la      a0, l0_pt
        li      a1, P_WONLY
        la      a2, page_a
        li      a3, F_RW - PTE_R
        call    set_pte
        la      a0, l0_pt
        li      a1, P_WX
        la      a2, page_a
        li      a3, F_RWX - PTE_R
        call    set_pte
        la      a0, l0_pt
        li      a1, P_XONLY
        la      a2, xonly_page
        li      a3, F_X
        call    set_pte
        la      a0, l0_pt
        li      a1, P_NOX
        la      a2, xonly_page
        li      a3, F_R
        call    set_pte
        la      a0, l0_pt
        li      a1, P_UDATA
        la      a2, u_data
        li      a3, F_RW | PTE_U
        call    set_pte
        la      a0, l0_pt
        li      a1, P_UCODE
        la      a2, user_page
        li      a3, F_RX | PTE_U
        call    set_pte
        la      a0, l0_pt
        li      a1, P_USTACK
        la      a2, u_stack
        li      a3, F_RW | PTE_U
        call    set_pte
        la      a0, l0_pt
        li      a1, P_AD
        la      a2, page_c
        li      a3, PTE_V | PTE_R | PTE_W
        call    set_pte
        la      a0, l0_pt
        li      a1, P_AD_AMO
        la      a2, page_d
        li      a3, PTE_V | PTE_R | PTE_W
        call    set_pte
        la      a0, l0_pt
        li      a1, P_X_NOA
        la      a2, xonly_page
        li      a3, PTE_V | PTE_X
        call    set_pte
        la      a0, l0_pt
        li      a1, P_SWAP
        la      a2, page_a
        li      a3, F_RW
        call    set_pte
        la      a0, l0_pt
        li      a1, P_PTR
        la      a2, l0_pt
        li      a3, PTE_V
        call    set_pte
        la      a0, l0_pt
        li      a1, P_RSV54
        la      a2, page_a
        li      a3, F_RW | (1 << 54)
        call    set_pte
        la      a0, l0_pt
        li      a1, P_RSV63
        la      a2, page_a
        li      a3, F_RW | (1 << 63)
        call    set_pte
        la      a0, l0_pt
        li      a1, P_PBMT
        la      a2, page_a
        li      a3, F_RW | (1 << 61)
        call    set_pte
        la      a0, l0_pt
        li      a1, P_LATE
        la      a2, page_b
        li      a3, F_RW - PTE_V
        call    set_pte
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# ---- address conversions (a0 = physical address in the program)

to_g1:                                  # the 1 GiB RW alias
        li      t0, VA_G1 - RAM
        add     a0, a0, t0
        ret
to_mega:                                # the 2 MiB RW alias
        li      t0, VA_MEGA - KERNEL_BASE
        add     a0, a0, t0
        ret
to_high:                                # the 1 GiB RX alias in the upper half
        li      t0, VA_HIGH - RAM
        add     a0, a0, t0
        ret

# l0_pte(a0 = index) -> a0 = l0_pt[index]
l0_pte:
        la      t0, l0_pt
        slli    a0, a0, 3
        add     t0, t0, a0
        ld      a0, 0(t0)
        ret

# l0_flags(a0 = index) -> a0 = the low 8 bits of l0_pt[index]
l0_flags:
        la      t0, l0_pt
        slli    a0, a0, 3
        add     t0, t0, a0
        ld      a0, 0(t0)
        andi    a0, a0, 0xff
        ret

# ---- one access each, reported

# probe_load(a0 = va, a1 = name): ld; prints the value or the trap
probe_load:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        mv      t0, a0
        li      t2, -1                  # a faulting load must leave it alone
probe_load_at:
        ld      t2, 0(t0)
        mv      s0, t2
        mv      a0, a1
        la      a1, probe_load_at
        mv      a2, t2
        li      a3, 1
        call    report
        beqz    a0, 1f
        mv      a0, s0
        li      a1, -1
        la      a2, n_rd_untouched
        call    check
1:      ld      ra, 0(sp)
        ld      s0, 8(sp)
        addi    sp, sp, 16
        ret

# probe_store(a0 = va, a1 = name, a2 = value): sd; prints "ok" or the trap
probe_store:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        mv      t0, a0
probe_store_at:
        sd      a2, 0(t0)
        mv      a0, a1
        la      a1, probe_store_at
        li      a3, 0
        call    report
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# probe_amo(a0 = va, a1 = name): amoadd.d of 1; prints the old value or the trap
probe_amo:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        mv      t0, a0
        li      t1, 1
        li      t2, -1
probe_amo_at:
        amoadd.d t2, t1, (t0)
        mv      a0, a1
        la      a1, probe_amo_at
        mv      a2, t2
        li      a3, 1
        call    report
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# probe_fetch(a0 = va, a1 = name): calls va (a function returning its own
# address from auipc); prints what it returned relative to va, or the trap
# (the handler resumes a fetch fault at ra, here)
probe_fetch:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        mv      s0, a0
        mv      s1, a1
        li      a0, -1
        jalr    ra, 0(s0)
        sub     a2, a0, s0
        mv      a0, s1
        mv      a1, s0
        li      a3, 1
        call    report
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

# report(a0 = name, a1 = reference for sepc (0: print sepc itself), a2 =
# value, a3 = 1 to print the value) -> a0 = traps since the last report.
# Prints "name: ok[ value]" if nothing trapped, else a line per trap:
# "name: scause=.. stval=.. sepc=(+/-offset from a1)[ from U]". Clears the log.
report:
        addi    sp, sp, -64
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        sd      s4, 40(sp)
        sd      s5, 48(sp)
        mv      s0, a0
        mv      s1, a1
        mv      s2, a2
        mv      s3, a3
        la      t0, log_count
        ld      s5, 0(t0)
        bnez    s5, 2f
        mv      a0, s0
        call    puts
        la      a0, s_ok
        call    puts
        beqz    s3, 1f
        call    space
        mv      a0, s2
        call    print_hex
1:      call    newline
        j       9f
2:      li      s4, 0
3:      bgeu    s4, s5, 8f
        li      t0, LOG_MAX
        bgeu    s4, t0, 8f
        mv      a0, s0
        call    puts
        la      a0, s_scause
        call    puts
        la      s3, trap_log
        slli    t0, s4, 5
        add     s3, s3, t0              # s3 = the entry
        ld      a0, 0(s3)
        call    print_hex
        la      a0, s_stval
        call    puts
        ld      a0, 8(s3)
        call    print_hex
        la      a0, s_sepc
        call    puts
        ld      a0, 16(s3)
        bnez    s1, 4f
        call    print_hex
        j       6f
4:      sub     a0, a0, s1
        bltz    a0, 5f
        sd      a0, 56(sp)
        li      a0, '+'
        call    putchar
        ld      a0, 56(sp)
5:      call    print_dec
6:      ld      t0, 24(s3)              # SPP
        bnez    t0, 7f
        la      a0, s_from_u
        call    puts
7:      call    newline
        addi    s4, s4, 1
        j       3b
8:      la      t0, log_count
        sd      zero, 0(t0)
9:      mv      a0, s5
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        ld      s4, 40(sp)
        ld      s5, 48(sp)
        addi    sp, sp, 64
        ret

# ---- the tests

# Write through one mapping, read through the others.
test_aliases:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        la      s0, page_a
        li      t0, VA_DATA + 0x10      # 4 KiB page
        li      t1, 0x0123456789abcdef
        sd      t1, 0(t0)
        ld      a1, 0x10(s0)
        la      a0, n_via_identity
        call    print_kv
        mv      a0, s0
        call    to_g1
        ld      a1, 0x10(a0)
        la      a0, n_via_g1
        call    print_kv
        mv      a0, s0
        call    to_mega
        ld      a1, 0x10(a0)
        la      a0, n_via_mega
        call    print_kv
        mv      a0, s0
        call    to_high
        ld      a1, 0x10(a0)
        la      a0, n_via_high
        call    print_kv

        mv      a0, s0                  # a word through the megapage
        call    to_mega
        li      t1, 0x13579bdf
        sw      t1, 0x20(a0)
        li      t0, VA_DATA
        ld      a1, 0x20(t0)
        la      a0, n_mega_word
        call    print_kv
        mv      a0, s0                  # a byte through the gigapage
        call    to_g1
        li      t1, 0x5a
        sb      t1, 0x28(a0)
        li      t0, VA_DATA
        ld      a1, 0x28(t0)
        la      a0, n_g1_byte
        call    print_kv
        li      t0, VA_DATA             # a halfword through the upper half
        li      t1, 0xbeef
        sh      t1, 0x30(t0)
        mv      a0, s0
        call    to_high
        lhu     a1, 0x30(a0)
        la      a0, n_high_half
        call    print_kv

        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

# Page faults of loads, stores and AMOs.
test_faults:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        li      a0, VA_INVALID + 0x18
        la      a1, n_load_invalid
        call    probe_load
        li      a0, VA_INVALID + 0x18
        la      a1, n_store_invalid
        li      a2, 1
        call    probe_store
        li      a0, VA_WONLY + 0x20
        la      a1, n_load_wonly
        call    probe_load
        li      a0, VA_WONLY + 0x20
        la      a1, n_store_wonly
        li      a2, 2
        call    probe_store
        li      a0, VA_WX + 0x28
        la      a1, n_load_wx
        call    probe_load
        li      a0, VA_WX + 0x28
        la      a1, n_store_wx
        li      a2, 3
        call    probe_store

        li      a0, VA_RO + 0x38
        la      a1, n_load_ro
        call    probe_load
        li      a0, VA_RO + 0x38
        la      a1, n_store_ro
        li      a2, 4
        call    probe_store
        li      a0, VA_RO + 0x38
        la      a1, n_amo_ro
        call    probe_amo
        li      a0, VA_RO + 0x38
        la      a1, n_load_ro_again
        call    probe_load
        li      a0, P_RO                # a refused store sets no D
        call    l0_flags
        mv      a1, a0
        la      a0, n_ro_flags
        call    print_kv
        li      a0, VA_HIGH + 0x200008  # the RX alias of the program
        la      a1, n_store_high
        li      a2, 5
        call    probe_store

        li      a0, VA_PTR + 0x40
        la      a1, n_load_ptr
        call    probe_load
        li      a0, VA_PTR + 0x40
        la      a1, n_store_ptr
        li      a2, 6
        call    probe_store
        li      a0, VA_RSV54 + 0x48
        la      a1, n_load_rsv54
        call    probe_load
        li      a0, VA_RSV54 + 0x48
        la      a1, n_store_rsv54
        li      a2, 7
        call    probe_store
        li      a0, VA_RSV63 + 0x50
        la      a1, n_load_rsv63
        call    probe_load
        li      a0, VA_PBMT + 0x58
        la      a1, n_load_pbmt
        call    probe_load

        li      a0, VA_MISALIGNED_MEGA + 0x60
        la      a1, n_load_mis_mega
        call    probe_load
        li      a0, VA_MISALIGNED_MEGA + 0x60
        la      a1, n_store_mis_mega
        li      a2, 8
        call    probe_store
        li      a0, VA_MISALIGNED_GIGA + 0x68
        la      a1, n_load_mis_giga
        call    probe_load
        li      a0, VA_ROOT_INVALID + 0x70
        la      a1, n_load_root_invalid
        call    probe_load
        li      a0, VA_ROOT_EMPTY + 0x78
        la      a1, n_load_root_empty
        call    probe_load
        li      a0, VA_L0_EMPTY + 0x80
        la      a1, n_load_l0_empty
        call    probe_load

        li      a0, 0x0000004000000000  # bit 38 set, 63:39 clear
        la      a1, n_load_noncanon1
        call    probe_load
        li      a0, 0xffffff8000000088  # bits 63:39 set, 38 clear
        la      a1, n_store_noncanon2
        li      a2, 9
        call    probe_store
        li      a0, 0x0000008000000098  # bit 39 only
        la      a1, n_load_noncanon4
        call    probe_load
        la      a0, xonly_page          # canonical upper half: the RX alias
        call    to_high
        la      a1, n_load_canon_high
        call    probe_load
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# MXR (loads from X-only pages) and SUM (S-mode access to U pages).
test_mxr_sum:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        li      t0, SSTATUS_SUM | SSTATUS_MXR
        csrc    sstatus, t0
        li      a0, VA_XONLY
        la      a1, n_load_xonly
        call    probe_load
        li      t0, SSTATUS_MXR
        csrs    sstatus, t0
        csrr    a1, sstatus
        li      t0, SSTATUS_SUM | SSTATUS_MXR
        and     a1, a1, t0
        la      a0, n_sstatus_sum_mxr
        call    print_kv
        li      a0, VA_XONLY
        la      a1, n_load_xonly_mxr
        call    probe_load
        li      a0, VA_XONLY + 0x100
        la      a1, n_store_xonly_mxr
        li      a2, 10
        call    probe_store
        li      a0, VA_WONLY + 0x20     # MXR does not make W-only readable
        la      a1, n_load_wonly_mxr
        call    probe_load
        li      a0, VA_UDATA + 0x10     # MXR is not SUM
        la      a1, n_load_udata_mxr
        call    probe_load
        li      t0, SSTATUS_MXR
        csrc    sstatus, t0

        li      a0, VA_UDATA + 0x10
        la      a1, n_load_udata
        call    probe_load
        li      a0, VA_UDATA + 0x18
        la      a1, n_store_udata
        li      a2, 11
        call    probe_store
        li      t0, SSTATUS_SUM
        csrs    sstatus, t0
        csrr    a1, sstatus
        li      t0, SSTATUS_SUM | SSTATUS_MXR
        and     a1, a1, t0
        la      a0, n_sstatus_sum_mxr
        call    print_kv
        li      a0, VA_UDATA + 0x10
        la      a1, n_load_udata_sum
        call    probe_load
        li      a0, VA_UDATA + 0x18
        la      a1, n_store_udata_sum
        li      a2, 0x1234
        call    probe_store
        li      a0, VA_UDATA + 0x18
        la      a1, n_amo_udata_sum
        call    probe_amo
        la      t0, u_data
        ld      a1, 0x18(t0)
        la      a0, n_udata_18
        call    print_kv
        li      a0, VA_XONLY            # SUM is not MXR
        la      a1, n_load_xonly_sum
        call    probe_load
        li      t0, SSTATUS_SUM
        csrc    sstatus, t0
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# Instruction fetches.
test_fetch:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        li      a0, VA_XONLY
        la      a1, n_fetch_xonly
        call    probe_fetch
        li      a0, VA_NOX
        la      a1, n_fetch_nox
        call    probe_fetch
        li      a0, VA_INVALID
        la      a1, n_fetch_invalid
        call    probe_fetch
        li      a0, VA_DATA
        la      a1, n_fetch_data
        call    probe_fetch
        li      a0, VA_WX
        la      a1, n_fetch_wx
        call    probe_fetch
        li      a0, VA_UCODE
        la      a1, n_fetch_ucode
        call    probe_fetch
        li      t0, SSTATUS_SUM
        csrs    sstatus, t0
        li      a0, VA_UCODE
        la      a1, n_fetch_ucode_sum
        call    probe_fetch
        li      t0, SSTATUS_SUM
        csrc    sstatus, t0
        li      a0, VA_MISALIGNED_MEGA + 0x5000
        la      a1, n_fetch_mis_mega
        call    probe_fetch
        li      a0, VA_PTR
        la      a1, n_fetch_ptr
        call    probe_fetch
        li      a0, 0x0000004000005000
        la      a1, n_fetch_noncanon
        call    probe_fetch
        la      a0, xonly_page          # the same function through the RX alias
        call    to_high
        la      a1, n_fetch_high
        call    probe_fetch
        la      a0, xonly_page          # and through the RW (no X) gigapage
        call    to_g1
        la      a1, n_fetch_g1
        call    probe_fetch_quiet
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# probe_fetch_quiet(a0 = va, a1 = name): probe_fetch for an address that
# depends on the layout: prints the cause, and stval and sepc relative to va
probe_fetch_quiet:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        mv      s0, a0
        mv      s1, a1
        jalr    ra, 0(s0)
        mv      a0, s1
        call    puts
        la      t0, log_count
        ld      t1, 0(t0)
        bnez    t1, 1f
        la      a0, s_ok
        call    puts
        j       2f
1:      sd      zero, 0(t0)
        la      a0, s_scause
        call    puts
        la      t0, trap_log
        ld      a0, 0(t0)
        call    print_hex
        la      a0, s_stval_rel
        call    puts
        la      t0, trap_log
        ld      a0, 8(t0)
        sub     a0, a0, s0
        call    print_dec
        la      a0, s_sepc_rel
        call    puts
        la      t0, trap_log
        ld      a0, 16(t0)
        sub     a0, a0, s0
        call    print_dec
2:      call    newline
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

# Hardware A/D updates.
test_accessed_dirty:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        li      a0, VA_AD + 0x10
        la      a1, n_load_ad
        call    probe_load
        li      a0, P_AD
        call    l0_flags
        mv      a1, a0
        la      a0, n_ad_after_load
        call    print_kv
        li      a0, VA_AD + 0x10
        la      a1, n_store_ad
        li      a2, 0x77
        call    probe_store
        li      a0, P_AD
        call    l0_flags
        mv      a1, a0
        la      a0, n_ad_after_store
        call    print_kv
        li      a0, P_AD                # the rest of the PTE is unchanged
        call    l0_pte
        srli    a0, a0, 8
        la      a1, page_c
        srli    a1, a1, 12
        slli    a1, a1, 2
        la      a2, n_ad_ppn
        call    check
        la      t0, page_c
        ld      a1, 0x10(t0)
        la      a0, n_page_c_10
        call    print_kv

        li      a0, VA_AD_AMO + 0x8
        la      a1, n_amo_ad
        call    probe_amo
        li      a0, P_AD_AMO
        call    l0_flags
        mv      a1, a0
        la      a0, n_ad_after_amo
        call    print_kv

        li      a0, VA_X_NOA
        la      a1, n_fetch_noa
        call    probe_fetch
        li      a0, P_X_NOA
        call    l0_flags
        mv      a1, a0
        la      a0, n_ad_after_fetch
        call    print_kv
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        addi    sp, sp, 32
        ret

# Remap a page and make the change visible with sfence.vma.
test_sfence:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        li      a0, VA_SWAP + 0x88
        la      a1, n_swap_a
        call    probe_load
        la      a0, l0_pt               # to page_b; sfence.vma of that page
        li      a1, P_SWAP
        la      a2, page_b
        li      a3, F_RW
        call    set_pte
        li      t0, VA_SWAP
        sfence.vma t0
        li      a0, VA_SWAP + 0x88
        la      a1, n_swap_b
        call    probe_load
        la      a0, l0_pt               # to page_c; sfence.vma of everything
        li      a1, P_SWAP
        la      a2, page_c
        li      a3, F_RW
        call    set_pte
        sfence.vma
        li      a0, VA_SWAP + 0x88
        la      a1, n_swap_c
        call    probe_load
        la      a0, l0_pt               # to page_d; sfence.vma of ASID 0
        li      a1, P_SWAP
        la      a2, page_d
        li      a3, F_RW
        call    set_pte
        li      t1, 0
        sfence.vma zero, t1
        li      a0, VA_SWAP + 0x88
        la      a1, n_swap_d
        call    probe_load
        la      a0, l0_pt               # back to page_a; that page in ASID 0
        li      a1, P_SWAP
        la      a2, page_a
        li      a3, F_RW
        call    set_pte
        li      t0, VA_SWAP + 0x88
        li      t1, 0
        sfence.vma t0, t1
        li      a0, VA_SWAP + 0x88
        la      a1, n_swap_a_again
        call    probe_load
        li      a0, VA_SWAP + 0x88      # the write shows in page_a
        la      a1, n_swap_store
        li      a2, 0x5a5a
        call    probe_store
        la      t0, page_a
        ld      a1, 0x88(t0)
        la      a0, n_page_a_8
        call    print_kv

        li      a0, VA_LATE + 0x10      # invalid, made valid, invalid again
        la      a1, n_late_invalid
        call    probe_load
        la      a0, l0_pt
        li      a1, P_LATE
        la      a2, page_b
        li      a3, F_RW
        call    set_pte
        li      t0, VA_LATE
        sfence.vma t0
        li      a0, VA_LATE + 0x10
        la      a1, n_late_valid
        call    probe_load
        la      a0, l0_pt
        li      a1, P_LATE
        la      a2, page_b
        li      a3, F_RW - PTE_V
        call    set_pte
        li      t0, VA_LATE
        sfence.vma t0
        li      a0, VA_LATE + 0x10
        la      a1, n_late_unmapped
        call    probe_load

        # a whole table: root[4] to a fresh level-1 table whose entry 1 maps
        # a 2 MiB alias, then back
        la      a0, l1_alt
        call    clear_page
        la      a0, l1_alt
        li      a1, 1
        li      a2, KERNEL_BASE
        li      a3, F_RW
        call    set_pte
        la      a0, root_pt
        li      a1, 4
        la      a2, l1_alt
        li      a3, PTE_V
        call    set_pte
        sfence.vma
        la      a0, page_a              # VA_PAGES + (page_a - KERNEL_BASE)
        li      t0, VA_PAGES - KERNEL_BASE
        add     a0, a0, t0
        ld      a1, 0x10(a0)
        la      a0, n_l1_swapped
        call    print_kv
        li      a0, VA_MEGA + 0x10      # l1_alt[0] is zero
        la      a1, n_l1_alt_empty
        call    probe_load
        la      a0, root_pt
        li      a1, 4
        la      a2, l1_pt
        li      a3, PTE_V
        call    set_pte
        sfence.vma
        li      a0, VA_DATA + 0x10
        la      a1, n_l1_restored
        call    probe_load
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

# AMOs and LR/SC through the mappings.
test_atomics:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        la      s0, page_a
        li      t0, VA_DATA + 0x40      # amoadd.d through the 4 KiB page
        li      t1, 0x100
        amoadd.d a1, t1, (t0)
        la      a0, n_amoadd_old
        call    print_kv
        mv      a0, s0                  # amoswap.w through the megapage
        call    to_mega
        addi    t0, a0, 0x48
        li      t1, -2
        amoswap.w a1, t1, (t0)
        la      a0, n_amoswap_old
        call    print_kv
        ld      a1, 0x48(s0)
        la      a0, n_amoswap_new
        call    print_kv
        mv      a0, s0                  # amoor.d through the gigapage
        call    to_g1
        addi    t0, a0, 0x50
        li      t1, 0x0f0f
        amoor.d a1, t1, (t0)
        la      a0, n_amoor_old
        call    print_kv
        ld      a1, 0x50(s0)
        la      a0, n_amoor_new
        call    print_kv

        li      t0, VA_DATA + 0x58      # LR/SC through the 4 KiB page
        li      s1, 0                   # failed SCs
1:      lr.d    t1, (t0)
        addi    t1, t1, 0x300
        sc.d    t2, t1, (t0)
        beqz    t2, 2f
        addi    s1, s1, 1
        li      t3, 100
        blt     s1, t3, 1b
2:      ld      a1, 0x58(s0)
        la      a0, n_lrsc
        call    print_kv
        li      t0, VA_DATA + 0x60      # LR.W/SC.W through the 4 KiB page
        li      s1, 0
1:      lr.w    t1, (t0)
        addi    t1, t1, -1
        sc.w    t2, t1, (t0)
        beqz    t2, 2f
        addi    s1, s1, 1
        li      t3, 100
        blt     s1, t3, 1b
2:      ld      a1, 0x60(s0)
        la      a0, n_lrsc_w
        call    print_kv
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

# Code written through one mapping and run through another after fence.i.
test_code_through_alias:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        la      s0, code_buf
        mv      a0, s0
        call    to_g1
        li      t1, 0x07b00513          # addi a0, zero, 123
        sw      t1, 0(a0)
        li      t1, 0x00008067          # ret
        sw      t1, 4(a0)
        fence.i
        jalr    ra, 0(s0)               # through the identity map
        mv      a1, a0
        la      a0, n_code_identity
        call    print_kd
        mv      a0, s0
        call    to_mega
        li      t1, 0x04d00513          # addi a0, zero, 77
        sw      t1, 0(a0)
        fence.i
        mv      a0, s0
        call    to_high
        jalr    ra, 0(a0)               # through the RX alias
        mv      a1, a0
        la      a0, n_code_high
        call    print_kd
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        addi    sp, sp, 32
        ret

# A U-mode function on a U page with a U stack.
test_user:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        li      a0, VA_UCODE + 8
        li      a1, VA_USTACK + 0x1000
        call    run_user
        mv      a1, a0
        la      a0, n_user_exit
        call    print_kv
        la      a0, n_user
        li      a1, 0                   # sepc printed as it is
        li      a3, 0
        call    report
        la      t0, u_data
        ld      a1, 0x100(t0)
        la      a0, n_user_stack_value
        call    print_kv
        la      t0, u_data
        ld      a1, 0x108(t0)
        la      a0, n_user_data_value
        call    print_kv
        la      t0, u_data
        ld      a1, 0x110(t0)
        la      a0, n_user_faulted_load
        call    print_kv
        la      t0, u_data
        ld      a1, 0x118(t0)
        la      a0, n_user_faulted_fetch
        call    print_kv
        la      t0, u_data
        ld      a1, 0x120(t0)
        la      a0, n_user_auipc
        call    print_kv
        la      t0, u_stack + 0xff8
        ld      a1, 0(t0)
        la      a0, n_user_stack_mem
        call    print_kv
        li      a0, P_USTACK
        call    l0_flags
        mv      a1, a0
        la      a0, n_ustack_flags
        call    print_kv
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
        csrw    sepc, a0
        li      t0, 0x100               # SPP = 0: return to U-mode
        csrc    sstatus, t0
        mv      sp, a1
        li      ra, 0
        li      a0, 0
        li      a1, 0
        sret

# ---- the trap handler

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
        csrr    s1, scause
        li      t0, 8                   # ecall from U-mode: a system call
        beq     s1, t0, user_ecall
        la      t0, total_traps
        ld      t1, 0(t0)
        addi    t1, t1, 1
        sd      t1, 0(t0)
        li      t2, MAX_TRAPS
        bgeu    t1, t2, too_many_traps
        la      t0, log_count
        ld      t1, 0(t0)
        li      t2, LOG_MAX
        bgeu    t1, t2, 1f
        la      t2, trap_log
        slli    t3, t1, 5
        add     t2, t2, t3
        sd      s1, 0(t2)
        csrr    t3, stval
        sd      t3, 8(t2)
        csrr    t3, sepc
        sd      t3, 16(t2)
        csrr    t3, sstatus
        srli    t3, t3, 8
        andi    t3, t3, 1
        sd      t3, 24(t2)
1:      addi    t1, t1, 1
        sd      t1, 0(t0)
        li      t0, 12                  # fetch fault: resume at ra
        bne     s1, t0, skip_instruction
        ld      t0, 8(sp)
        csrw    sepc, t0
        j       trap_return
skip_instruction:
        csrr    t0, sepc                # else skip the instruction
        addi    t0, t0, 4
        csrw    sepc, t0

trap_return:
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

user_ecall:
        ld      a7, 136(sp)
        li      t0, SYS_EXIT
        bne     a7, t0, 1f
        ld      a0, 80(sp)              # exit: back into run_user's caller
        la      t0, trap_stack_top
        csrw    sscratch, t0
        la      t0, kernel_context
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
1:      li      t0, -38                 # ENOSYS
        sd      t0, 80(sp)
        j       skip_instruction

too_many_traps:                         # a fault loop: give up
        la      a0, s_too_many
        call    puts
        li      a7, SBI_SRST
        li      a6, 0
        li      a0, 0
        li      a1, 1
        ecall
1:      j       1b

# ---- code mapped on its own pages

        .align  12
xonly_page:                             # mapped X-only, R-only (no X), X without A
        auipc   a0, 0
        ret
        .align  12
user_page:                              # mapped at VA_UCODE, U R X
        auipc   a0, 0                   # +0: what S-mode fetches try to run
        ret
user_main:                              # +8: the U-mode entry
        addi    sp, sp, -16
        li      t0, 0x1234
        sd      t0, 8(sp)               # the U stack
        ld      s0, 8(sp)
        li      t1, VA_UDATA
        ld      s1, 0x20(t1)            # the U data page
        li      t1, VA_DATA + 0x68      # a page without U:
        li      t2, -1
        ld      t2, 0(t1)               # load page fault
        sd      t0, 0(t1)               # store page fault
        li      t1, VA_XONLY            # fetch page fault, resumed at ra
        li      a0, -1
        jalr    ra, 0(t1)
        mv      s2, a0
        jal     ra, user_page           # its own page: a0 = VA_UCODE
        mv      s3, a0
        li      t1, VA_UDATA
        sd      s0, 0x100(t1)
        sd      s1, 0x108(t1)
        sd      t2, 0x110(t1)
        sd      s2, 0x118(t1)
        sd      s3, 0x120(t1)
        li      a0, 0x55
        li      a7, SYS_EXIT
        ecall
1:      j       1b
        .align  12

        .section .rodata
program_name:
        .asciz  "paging"
s_paging_on:    .asciz "translation on\n"
s_ok:           .asciz ": ok"
s_scause:       .asciz ": scause="
s_stval:        .asciz " stval="
s_sepc:         .asciz " sepc="
s_from_u:       .asciz " from U"
s_stval_rel:    .asciz " stval=va+"
s_sepc_rel:     .asciz " sepc=va+"
s_too_many:     .asciz "FAIL too many traps\n"
n_satp_entry:   .asciz "satp at entry"
n_fits:         .asciz "program under 2 MiB"
n_satp_mode_asid: .asciz "satp MODE and ASID (bits 63:44)"
n_satp_readback:  .asciz "satp read back"
n_satp_mode1:   .asciz "satp after writing MODE 1"
n_satp_mode15:  .asciz "satp after writing MODE 15"
n_satp_after_unsupported: .asciz "satp MODE and ASID after unsupported modes"
n_satp_bare:    .asciz "satp after writing Bare"
n_satp_bare_mode1: .asciz "satp after writing MODE 1 while Bare"
n_bare_page_a:  .asciz "page_a+0x10, translation off"
n_bare_page_a_amo: .asciz "page_a+0x40, translation off"
n_total_traps:  .asciz "page faults taken"
n_rd_untouched: .asciz "rd of a faulting load unchanged"
n_via_identity: .asciz "written via 4 KiB page, read via identity"
n_via_g1:       .asciz "read via 1 GiB alias"
n_via_mega:     .asciz "read via 2 MiB alias"
n_via_high:     .asciz "read via upper-half 1 GiB alias"
n_mega_word:    .asciz "sw via 2 MiB alias, ld via 4 KiB page"
n_g1_byte:      .asciz "sb via 1 GiB alias, ld via 4 KiB page"
n_high_half:    .asciz "sh via 4 KiB page, lhu via upper-half alias"
n_load_invalid:   .asciz "load V=0"
n_store_invalid:  .asciz "store V=0"
n_load_wonly:     .asciz "load W without R"
n_store_wonly:    .asciz "store W without R"
n_load_wx:        .asciz "load W+X without R"
n_store_wx:       .asciz "store W+X without R"
n_load_ro:        .asciz "load read-only"
n_store_ro:       .asciz "store read-only"
n_amo_ro:         .asciz "amoadd.d read-only"
n_load_ro_again:  .asciz "load read-only after refused writes"
n_ro_flags:       .asciz "read-only PTE flags (no D)"
n_store_high:     .asciz "store RX upper-half alias"
n_load_ptr:       .asciz "load pointer PTE at level 0"
n_store_ptr:      .asciz "store pointer PTE at level 0"
n_load_rsv54:     .asciz "load PTE bit 54"
n_store_rsv54:    .asciz "store PTE bit 54"
n_load_rsv63:     .asciz "load PTE bit 63 (N)"
n_load_pbmt:      .asciz "load PTE bit 61 (PBMT)"
n_load_mis_mega:  .asciz "load misaligned megapage"
n_store_mis_mega: .asciz "store misaligned megapage"
n_load_mis_giga:  .asciz "load misaligned gigapage"
n_load_root_invalid: .asciz "load root PTE V=0"
n_load_root_empty:   .asciz "load root PTE zero"
n_load_l0_empty:     .asciz "load level-0 PTE zero"
n_load_noncanon1:    .asciz "load non-canonical 0x0000004000000000"
n_store_noncanon2:   .asciz "store non-canonical 0xffffff8000000088"
n_load_noncanon4:    .asciz "load non-canonical 0x0000008000000098"
n_load_canon_high:   .asciz "load upper-half RX alias of an X-only page"
n_sstatus_sum_mxr:   .asciz "sstatus SUM|MXR"
n_load_xonly:        .asciz "load X-only, MXR=0"
n_load_xonly_mxr:    .asciz "load X-only, MXR=1"
n_store_xonly_mxr:   .asciz "store X-only, MXR=1"
n_load_wonly_mxr:    .asciz "load W without R, MXR=1"
n_load_udata_mxr:    .asciz "load U page, SUM=0 MXR=1"
n_load_udata:        .asciz "load U page, SUM=0"
n_store_udata:       .asciz "store U page, SUM=0"
n_load_udata_sum:    .asciz "load U page, SUM=1"
n_store_udata_sum:   .asciz "store U page, SUM=1"
n_amo_udata_sum:     .asciz "amoadd.d U page, SUM=1"
n_udata_18:          .asciz "U page +0x18, identity"
n_load_xonly_sum:    .asciz "load X-only, SUM=1 MXR=0"
n_fetch_xonly:       .asciz "fetch X-only (auipc - va)"
n_fetch_nox:         .asciz "fetch R without X"
n_fetch_invalid:     .asciz "fetch V=0"
n_fetch_data:        .asciz "fetch RW without X"
n_fetch_wx:          .asciz "fetch W+X without R"
n_fetch_ucode:       .asciz "fetch U page from S, SUM=0"
n_fetch_ucode_sum:   .asciz "fetch U page from S, SUM=1"
n_fetch_mis_mega:    .asciz "fetch misaligned megapage"
n_fetch_ptr:         .asciz "fetch pointer PTE at level 0"
n_fetch_noncanon:    .asciz "fetch non-canonical 0x0000004000005000"
n_fetch_high:        .asciz "fetch upper-half RX alias (auipc - va)"
n_fetch_g1:          .asciz "fetch 1 GiB RW alias"
n_load_ad:           .asciz "load A=D=0 page"
n_ad_after_load:     .asciz "PTE flags after load"
n_store_ad:          .asciz "store A=1 D=0 page"
n_ad_after_store:    .asciz "PTE flags after store"
n_ad_ppn:            .asciz "PTE PPN and RSW after A/D updates"
n_page_c_10:         .asciz "page_c+0x10, identity"
n_amo_ad:            .asciz "amoadd.d A=D=0 page"
n_ad_after_amo:      .asciz "PTE flags after amoadd.d"
n_fetch_noa:         .asciz "fetch X page with A=0 (auipc - va)"
n_ad_after_fetch:    .asciz "PTE flags after fetch"
n_swap_a:            .asciz "load page_a"
n_swap_b:            .asciz "remapped to page_b, sfence.vma va"
n_swap_c:            .asciz "remapped to page_c, sfence.vma"
n_swap_d:            .asciz "remapped to page_d, sfence.vma zero, asid 0"
n_swap_a_again:      .asciz "remapped to page_a, sfence.vma va, asid 0"
n_swap_store:        .asciz "store remapped page"
n_page_a_8:          .asciz "page_a+0x88, identity"
n_late_invalid:      .asciz "load V=0 page"
n_late_valid:        .asciz "same page made valid, sfence.vma va"
n_late_unmapped:     .asciz "same page made invalid, sfence.vma va"
n_l1_swapped:        .asciz "root[4] to another level-1 table: megapage read"
n_l1_alt_empty:      .asciz "root[4] to another level-1 table: load its zero entry"
n_l1_restored:       .asciz "root[4] restored: load 4 KiB page"
n_amoadd_old:        .asciz "amoadd.d via 4 KiB page, old"
n_amoswap_old:       .asciz "amoswap.w via 2 MiB alias, old"
n_amoswap_new:       .asciz "amoswap.w via 2 MiB alias, new doubleword"
n_amoor_old:         .asciz "amoor.d via 1 GiB alias, old"
n_amoor_new:         .asciz "amoor.d via 1 GiB alias, new"
n_lrsc:              .asciz "lr.d/sc.d via 4 KiB page"
n_lrsc_w:            .asciz "lr.w/sc.w via 4 KiB page, doubleword"
n_code_identity:     .asciz "code written via 1 GiB alias, run via identity"
n_code_high:         .asciz "code written via 2 MiB alias, run via upper half"
n_user_exit:         .asciz "U-mode exit code"
n_user:              .asciz "U-mode"
n_user_stack_value:  .asciz "U stack round trip"
n_user_data_value:   .asciz "U data page load"
n_user_faulted_load: .asciz "U faulting load left rd"
n_user_faulted_fetch: .asciz "U faulting fetch left a0"
n_user_auipc:        .asciz "U auipc on its own page"
n_user_stack_mem:    .asciz "U stack top doubleword, identity"
n_ustack_flags:      .asciz "U stack PTE flags"

        .data
        .align  3
kernel_context: .space 112
log_count:      .dword 0
total_traps:    .dword 0
trap_log:       .space 32 * LOG_MAX

        .bss
        .align  12
root_pt:        .space 4096
l1_pt:          .space 4096
l0_pt:          .space 4096
l1_alt:         .space 4096
page_a:         .space 4096
page_b:         .space 4096
page_c:         .space 4096
page_d:         .space 4096
u_data:         .space 4096
u_stack:        .space 4096
code_buf:       .space 4096
trap_stack:     .space 8192
trap_stack_top:
program_end:
