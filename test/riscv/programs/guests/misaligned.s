# Misaligned loads and stores of every width at every byte offset, inside
# a doubleword, across doublewords and across a 4 KiB page boundary. On QEMU
# the hart traps and OpenSBI emulates them; faultline handles them itself;
# either way the guest sees ordinary loads and stores.

        .equ    PAGE, 4096

        .text
main:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        call    fill_pages
        la      a0, pages               # inside a page
        addi    a0, a0, 64
        la      a1, n_inside
        call    loads_at
        la      a0, pages               # ending just past the page boundary
        li      t0, PAGE - 8
        add     a0, a0, t0
        la      a1, n_across
        call    loads_at
        la      a0, pages
        addi    a0, a0, 128
        la      a1, n_store_inside
        call    stores_at
        la      a0, pages
        li      t0, PAGE - 8
        add     a0, a0, t0
        la      a1, n_store_across
        call    stores_at
        call    exact
        call    copy_unaligned
        li      a0, 0
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# pages[i] = i * 0x9d + (i >> 8) + 0x80 as bytes, two pages
fill_pages:
        la      t0, pages
        li      t1, 0
        li      t4, 2 * PAGE
1:      li      t2, 0x9d
        mul     t2, t1, t2
        srli    t3, t1, 8
        add     t2, t2, t3
        addi    t2, t2, 0x80
        add     t3, t0, t1
        sb      t2, 0(t3)
        addi    t1, t1, 1
        blt     t1, t4, 1b
        ret

# loads_at(a0 = base, a1 = name): for offsets 0..7 from base, every load
# width; prints name=hash.
loads_at:
        addi    sp, sp, -48
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        mv      s0, a0
        mv      s3, a1
        call    hash_init
        mv      s2, a0
        li      s1, 0
1:      add     t0, s0, s1
        lh      a1, 0(t0)
        mv      a0, s2
        call    mix
        add     t0, s0, s1
        lhu     a1, 0(t0)
        call    mix
        add     t0, s0, s1
        lw      a1, 0(t0)
        call    mix
        add     t0, s0, s1
        lwu     a1, 0(t0)
        call    mix
        add     t0, s0, s1
        ld      a1, 0(t0)
        call    mix
        add     t0, s0, s1
        lh      a1, 5(t0)               # odd immediate offsets too
        call    mix
        add     t0, s0, s1
        ld      a1, 3(t0)
        call    mix
        mv      s2, a0
        addi    s1, s1, 1
        li      t0, 8
        blt     s1, t0, 1b
        mv      a0, s3
        mv      a1, s2
        call    print_kv
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        addi    sp, sp, 48
        ret

# stores_at(a0 = base, a1 = name): for offsets 0..7 store each width at
# base + offset into a clean area and hash the 24 bytes around it.
stores_at:
        addi    sp, sp, -48
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        mv      s0, a0
        mv      s3, a1
        call    hash_init
        mv      s2, a0
        li      s1, 0
1:      li      t1, -1                  # clean: ones at base-8 .. base+16
        sd      t1, -8(s0)
        sd      t1, 0(s0)
        sd      t1, 8(s0)
        add     t0, s0, s1
        li      t1, 0x0102030405060708
        sd      t1, 0(t0)
        li      t1, 0x1112131415161718
        sw      t1, 1(t0)
        li      t1, 0x2122232425262728
        sh      t1, -1(t0)
        sh      t1, 7(t0)
        li      t1, 0x3132333435363738
        sw      t1, 6(t0)
        ld      a1, -8(s0)
        mv      a0, s2
        call    mix
        ld      a1, 0(s0)
        call    mix
        ld      a1, 8(s0)
        call    mix
        mv      s2, a0
        addi    s1, s1, 1
        li      t0, 8
        blt     s1, t0, 1b
        mv      a0, s3
        mv      a1, s2
        call    print_kv
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        addi    sp, sp, 48
        ret

# A few exact values: sign extension of misaligned lh/lw and a round trip.
exact:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        la      t0, scratch
        li      t1, 0x89abcdef01234567
        sd      t1, 1(t0)
        ld      a1, 1(t0)
        la      a0, n_sd_ld
        call    print_kv
        la      t0, scratch
        lw      a1, 3(t0)
        la      a0, n_lw3
        call    print_kv
        la      t0, scratch
        lwu     a1, 5(t0)
        la      a0, n_lwu5
        call    print_kv
        la      t0, scratch
        lh      a1, 7(t0)
        la      a0, n_lh7
        call    print_kv
        la      t0, scratch
        lhu     a1, 7(t0)
        la      a0, n_lhu7
        call    print_kv
        la      t0, scratch
        ld      a1, 0(t0)
        la      a0, n_ld0
        call    print_kv
        la      t0, scratch
        ld      a1, 8(t0)
        la      a0, n_ld8
        call    print_kv
        la      t0, scratch             # the same register as base and rd
        addi    t0, t0, 1
        ld      t0, 0(t0)
        li      a1, 0x89abcdef01234567
        mv      a0, t0
        la      a2, n_rd_base
        call    check
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# memcpy with doubleword accesses at any alignment (no byte fallback).
copy_unaligned:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        call    hash_init
        mv      s1, a0
        li      s0, 0
1:      la      t0, pages
        add     t0, t0, s0              # source at offset s0
        la      t1, copy_dst
        addi    t1, t1, 3
        sub     t1, t1, s0              # destination at 3 - s0 (mod 8)
        addi    t1, t1, 8
        li      t2, 25
2:      ld      t3, 0(t0)
        sd      t3, 0(t1)
        addi    t0, t0, 8
        addi    t1, t1, 8
        addi    t2, t2, -1
        bnez    t2, 2b
        la      t4, copy_dst            # hash copy_dst as doublewords
        li      t5, 27
3:      ld      a1, 0(t4)
        mv      a0, s1
        call    mix
        mv      s1, a0
        addi    t4, t4, 8
        addi    t5, t5, -1
        bnez    t5, 3b
        addi    s0, s0, 1
        li      t0, 8
        blt     s0, t0, 1b
        la      a0, n_copy
        mv      a1, s1
        call    print_kv
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

        .section .rodata
program_name:
        .asciz  "misaligned"
n_inside:       .asciz "loads inside a page"
n_across:       .asciz "loads across a page"
n_store_inside: .asciz "stores inside a page"
n_store_across: .asciz "stores across a page"
n_sd_ld:        .asciz "sd/ld +1"
n_lw3:          .asciz "lw +3"
n_lwu5:         .asciz "lwu +5"
n_lh7:          .asciz "lh +7"
n_lhu7:         .asciz "lhu +7"
n_ld0:          .asciz "ld +0"
n_ld8:          .asciz "ld +8"
n_rd_base:      .asciz "ld rd=base"
n_copy:         .asciz "unaligned copy"

        .bss
        .align  3
scratch:
        .space  16
copy_dst:
        .space  232
        .align  12
pages:
        .space  2 * PAGE
