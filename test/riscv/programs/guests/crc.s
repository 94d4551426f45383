# Checksums over the standard check string "123456789" and over a 64 KiB
# generated buffer: CRC-32 bitwise and table-driven (which must agree),
# CRC-32C, CRC-16/CCITT-FALSE, CRC-64/XZ, Adler-32 and FNV-1a. The check
# string's values are the published catalogue values and are checked.

        .equ    BIG, 65536

        .text
main:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        call    fill_big

        la      a0, check_string
        li      a1, 9
        li      a2, 0xedb88320
        call    crc32_bitwise
        mv      s0, a0
        mv      a1, a0
        la      a0, n_crc32
        call    print_kv
        mv      a0, s0
        li      a1, 0xcbf43926
        la      a2, n_crc32
        call    check

        la      a0, check_string
        li      a1, 9
        li      a2, 0x82f63b78
        call    crc32_bitwise
        mv      s0, a0
        mv      a1, a0
        la      a0, n_crc32c
        call    print_kv
        mv      a0, s0
        li      a1, 0xe3069283
        la      a2, n_crc32c
        call    check

        la      a0, check_string
        li      a1, 9
        call    crc16_ccitt
        mv      s0, a0
        mv      a1, a0
        la      a0, n_crc16
        call    print_kv
        mv      a0, s0
        li      a1, 0x29b1
        la      a2, n_crc16
        call    check

        la      a0, check_string
        li      a1, 9
        call    crc64_xz
        mv      s0, a0
        mv      a1, a0
        la      a0, n_crc64
        call    print_kv
        mv      a0, s0
        li      a1, 0x995dc9bbdf1939fa
        la      a2, n_crc64
        call    check

        la      a0, wikipedia
        li      a1, 9
        call    adler32
        mv      s0, a0
        mv      a1, a0
        la      a0, n_adler
        call    print_kv
        mv      a0, s0
        li      a1, 0x11e60398
        la      a2, n_adler
        call    check

        la      a0, check_string
        li      a1, 9
        call    fnv1a64
        mv      a1, a0
        la      a0, n_fnv
        call    print_kv

        # the big buffer: bitwise and table-driven CRC-32 must agree
        li      a0, 0xedb88320
        call    make_table
        la      a0, big
        li      a1, BIG
        li      a2, 0xedb88320
        call    crc32_bitwise
        mv      s0, a0
        la      a0, big
        li      a1, BIG
        call    crc32_table
        mv      s1, a0
        mv      a1, s0
        la      a2, n_table_agrees
        call    check
        la      a0, n_big_crc32
        mv      a1, s1
        call    print_kv
        # and on every unaligned prefix of the check string
        li      s0, 0
1:      la      a0, check_string
        add     a0, a0, s0
        li      a1, 9
        sub     a1, a1, s0
        call    crc32_table
        call    print_hex32
        call    space
        addi    s0, s0, 1
        li      t0, 10
        blt     s0, t0, 1b
        call    newline

        la      a0, big
        li      a1, BIG
        li      a2, 0x82f63b78
        call    crc32_bitwise
        mv      a1, a0
        la      a0, n_big_crc32c
        call    print_kv
        la      a0, big
        li      a1, BIG
        call    crc64_xz
        mv      a1, a0
        la      a0, n_big_crc64
        call    print_kv
        la      a0, big
        li      a1, BIG
        call    adler32
        mv      a1, a0
        la      a0, n_big_adler
        call    print_kv
        la      a0, big
        li      a1, BIG
        call    fnv1a64
        mv      a1, a0
        la      a0, n_big_fnv
        call    print_kv

        li      a0, 0
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

# big[i]: an LCG's top bytes
fill_big:
        la      t0, big
        li      t1, BIG
        li      t2, 1
        li      t3, 6364136223846793005
        li      t4, 1442695040888963407
1:      mul     t2, t2, t3
        add     t2, t2, t4
        srli    t5, t2, 56
        sb      t5, 0(t0)
        addi    t0, t0, 1
        addi    t1, t1, -1
        bnez    t1, 1b
        ret

# crc32_bitwise(a0 = data, a1 = length, a2 = reflected polynomial) -> crc
crc32_bitwise:
        li      t0, 0xffffffff
1:      beqz    a1, 4f
        lbu     t1, 0(a0)
        xor     t0, t0, t1
        li      t2, 8
2:      andi    t3, t0, 1
        srli    t0, t0, 1
        beqz    t3, 3f
        xor     t0, t0, a2
3:      addi    t2, t2, -1
        bnez    t2, 2b
        addi    a0, a0, 1
        addi    a1, a1, -1
        j       1b
4:      not     a0, t0
        slli    a0, a0, 32
        srli    a0, a0, 32
        ret

# make_table(a0 = reflected polynomial): crc_table[256] of words
make_table:
        la      t4, crc_table
        li      t0, 0
1:      mv      t1, t0
        li      t2, 8
2:      andi    t3, t1, 1
        srli    t1, t1, 1
        beqz    t3, 3f
        xor     t1, t1, a0
3:      addi    t2, t2, -1
        bnez    t2, 2b
        slli    t5, t0, 2
        add     t5, t4, t5
        sw      t1, 0(t5)
        addi    t0, t0, 1
        li      t2, 256
        blt     t0, t2, 1b
        ret

# crc32_table(a0 = data, a1 = length) -> crc, one table lookup per byte
crc32_table:
        li      t0, -1
        la      t4, crc_table
1:      beqz    a1, 2f
        lbu     t1, 0(a0)
        xor     t2, t0, t1
        andi    t2, t2, 0xff
        slli    t2, t2, 2
        add     t2, t4, t2
        lwu     t3, 0(t2)
        srliw   t0, t0, 8
        xor     t0, t0, t3
        addi    a0, a0, 1
        addi    a1, a1, -1
        j       1b
2:      not     a0, t0
        slli    a0, a0, 32
        srli    a0, a0, 32
        ret

# crc16_ccitt(a0 = data, a1 = length): poly 0x1021, init 0xffff, not reflected
crc16_ccitt:
        li      t0, 0xffff
        li      t5, 0x1021
1:      beqz    a1, 4f
        lbu     t1, 0(a0)
        slli    t1, t1, 8
        xor     t0, t0, t1
        li      t2, 8
2:      slli    t0, t0, 1
        srli    t3, t0, 16
        andi    t3, t3, 1
        beqz    t3, 3f
        xor     t0, t0, t5
3:      li      t4, 0xffff
        and     t0, t0, t4
        addi    t2, t2, -1
        bnez    t2, 2b
        addi    a0, a0, 1
        addi    a1, a1, -1
        j       1b
4:      mv      a0, t0
        ret

# crc64_xz(a0 = data, a1 = length): reflected poly 0xc96c5795d7870f42
crc64_xz:
        li      t0, -1
        li      t5, 0xc96c5795d7870f42
1:      beqz    a1, 4f
        lbu     t1, 0(a0)
        xor     t0, t0, t1
        li      t2, 8
2:      andi    t3, t0, 1
        srli    t0, t0, 1
        neg     t3, t3                  # all ones when the low bit was set
        and     t3, t3, t5
        xor     t0, t0, t3
        addi    t2, t2, -1
        bnez    t2, 2b
        addi    a0, a0, 1
        addi    a1, a1, -1
        j       1b
4:      not     a0, t0
        ret

# adler32(a0 = data, a1 = length), with remu
adler32:
        li      t0, 1                   # a
        li      t1, 0                   # b
        li      t5, 65521
1:      beqz    a1, 2f
        lbu     t2, 0(a0)
        add     t0, t0, t2
        remu    t0, t0, t5
        add     t1, t1, t0
        remu    t1, t1, t5
        addi    a0, a0, 1
        addi    a1, a1, -1
        j       1b
2:      slli    a0, t1, 16
        or      a0, a0, t0
        ret

# fnv1a64(a0 = data, a1 = length)
fnv1a64:
        li      t0, 0xcbf29ce484222325
        li      t5, 0x100000001b3
1:      beqz    a1, 2f
        lbu     t2, 0(a0)
        xor     t0, t0, t2
        mul     t0, t0, t5
        addi    a0, a0, 1
        addi    a1, a1, -1
        j       1b
2:      mv      a0, t0
        ret

        .section .rodata
program_name:
        .asciz  "crc"
check_string:   .ascii "123456789"
wikipedia:      .ascii "Wikipedia"
n_crc32:        .asciz "crc32"
n_crc32c:       .asciz "crc32c"
n_crc16:        .asciz "crc16-ccitt-false"
n_crc64:        .asciz "crc64-xz"
n_adler:        .asciz "adler32(Wikipedia)"
n_fnv:          .asciz "fnv1a64"
n_table_agrees: .asciz "table crc32 == bitwise crc32"
n_big_crc32:    .asciz "64k crc32"
n_big_crc32c:   .asciz "64k crc32c"
n_big_crc64:    .asciz "64k crc64-xz"
n_big_adler:    .asciz "64k adler32"
n_big_fnv:      .asciz "64k fnv1a64"

        .bss
        .align  3
crc_table:
        .space  1024
big:    .space  BIG
