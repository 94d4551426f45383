# SHA-256 (FIPS 180-4) in 32-bit arithmetic on RV64: values are kept
# sign-extended, rotations are srliw/slliw pairs and additions addw. Hashes
# the standard test vectors ("", "abc", the 448-bit two-block message),
# 10000 'a's (the million of the standard vector would be slow), messages
# of 55..65 bytes around the padding boundary and a 4 KiB pattern; the
# known digests are checked.

        .text
main:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)

        la      a0, msg_abc
        li      a1, 0
        la      a2, n_empty
        la      a3, want_empty
        call    hash_and_report
        la      a0, msg_abc
        li      a1, 3
        la      a2, n_abc
        la      a3, want_abc
        call    hash_and_report
        la      a0, msg_448
        li      a1, 56
        la      a2, n_448
        la      a3, want_448
        call    hash_and_report

        la      a0, big                 # 10000 'a'
        li      a1, 'a'
        li      a2, 10000
        call    fill
        la      a0, big
        li      a1, 10000
        la      a2, n_10000a
        la      a3, want_10000a
        call    hash_and_report

        # lengths 55..65 around the padding boundary, of a byte pattern
        li      s0, 0
        la      t0, big
1:      andi    t1, s0, 0xff
        xori    t1, t1, 0xa5
        add     t2, t0, s0
        sb      t1, 0(t2)
        addi    s0, s0, 1
        li      t1, 4096
        blt     s0, t1, 1b
        li      s0, 55
2:      la      a0, big
        mv      a1, s0
        la      a2, digest
        call    sha256
        la      a0, digest              # print the first word of each digest
        lbu     t0, 0(a0)
        lbu     t1, 1(a0)
        slli    t0, t0, 8
        or      a0, t0, t1
        call    print_hex32
        call    space
        addi    s0, s0, 1
        li      t0, 66
        blt     s0, t0, 2b
        call    newline
        la      a0, big
        li      a1, 4096
        la      a2, n_4096
        li      a3, 0
        call    hash_and_report

        li      a0, 0
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        addi    sp, sp, 32
        ret

fill:
        add     t0, a0, a2
1:      bgeu    a0, t0, 2f
        sb      a1, 0(a0)
        addi    a0, a0, 1
        j       1b
2:      ret

# hash_and_report(a0 = message, a1 = length, a2 = name, a3 = expected digest or 0)
hash_and_report:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        mv      s0, a2
        mv      s1, a3
        la      a2, digest
        call    sha256
        mv      a0, s0
        call    puts
        li      a0, '='
        call    putchar
        li      s2, 0
1:      la      t0, digest
        add     t0, t0, s2
        lbu     a0, 0(t0)
        srli    a0, a0, 4
        la      t1, hexchars
        add     t1, t1, a0
        lbu     a0, 0(t1)
        call    putchar
        la      t0, digest
        add     t0, t0, s2
        lbu     a0, 0(t0)
        andi    a0, a0, 15
        la      t1, hexchars
        add     t1, t1, a0
        lbu     a0, 0(t1)
        call    putchar
        addi    s2, s2, 1
        li      t0, 32
        blt     s2, t0, 1b
        call    newline
        beqz    s1, 3f
        li      s2, 0
2:      la      t0, digest
        add     t0, t0, s2
        ld      a0, 0(t0)
        add     t1, s1, s2
        ld      a1, 0(t1)
        mv      a2, s0
        call    check
        addi    s2, s2, 8
        li      t0, 32
        blt     s2, t0, 2b
3:      ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        addi    sp, sp, 32
        ret

# sha256(a0 = message, a1 = length, a2 = 32-byte output)
sha256:
        addi    sp, sp, -48
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        mv      s0, a0
        mv      s1, a1
        mv      s2, a2
        mv      s3, a1                  # total length
        la      t0, state               # initial hash values
        la      t1, initial
        li      t2, 8
1:      lw      t3, 0(t1)
        sw      t3, 0(t0)
        addi    t0, t0, 4
        addi    t1, t1, 4
        addi    t2, t2, -1
        bnez    t2, 1b
2:      li      t0, 64                  # whole blocks
        blt     s1, t0, 3f
        mv      a0, s0
        call    sha256_block
        addi    s0, s0, 64
        addi    s1, s1, -64
        j       2b
3:      la      t0, tail                # pad: zero 128 bytes, copy the rest
        li      t1, 16
4:      sd      zero, 0(t0)
        addi    t0, t0, 8
        addi    t1, t1, -1
        bnez    t1, 4b
        la      t0, tail
        li      t1, 0
5:      bge     t1, s1, 6f
        add     t2, s0, t1
        lbu     t3, 0(t2)
        add     t2, t0, t1
        sb      t3, 0(t2)
        addi    t1, t1, 1
        j       5b
6:      add     t2, t0, s1
        li      t3, 0x80
        sb      t3, 0(t2)
        li      t4, 64                  # one or two padded blocks
        addi    t5, s1, 9
        ble     t5, t4, 7f
        li      t4, 128
7:      add     t5, t0, t4              # big-endian bit length at the end
        slli    t6, s3, 3
        li      t1, 8
8:      addi    t5, t5, -1
        sb      t6, 0(t5)
        srli    t6, t6, 8
        addi    t1, t1, -1
        bnez    t1, 8b
        mv      s1, t4
        la      a0, tail
        call    sha256_block
        li      t0, 128
        bne     s1, t0, 9f
        la      a0, tail
        addi    a0, a0, 64
        call    sha256_block
9:      la      t0, state               # output big-endian
        li      t1, 8
10:     lw      t2, 0(t0)
        srli    t3, t2, 24
        sb      t3, 0(s2)
        srli    t3, t2, 16
        sb      t3, 1(s2)
        srli    t3, t2, 8
        sb      t3, 2(s2)
        sb      t2, 3(s2)
        addi    t0, t0, 4
        addi    s2, s2, 4
        addi    t1, t1, -1
        bnez    t1, 10b
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        addi    sp, sp, 48
        ret

# sha256_block(a0 = 64-byte block): updates state
sha256_block:
        addi    sp, sp, -112
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
        la      s11, schedule
        li      t0, 0                   # W[0..15] from big-endian bytes
1:      lbu     t1, 0(a0)
        lbu     t2, 1(a0)
        lbu     t3, 2(a0)
        lbu     t4, 3(a0)
        slliw   t1, t1, 24
        slli    t2, t2, 16
        slli    t3, t3, 8
        or      t1, t1, t2
        or      t1, t1, t3
        or      t1, t1, t4
        slli    t5, t0, 2
        add     t5, s11, t5
        sw      t1, 0(t5)
        addi    a0, a0, 4
        addi    t0, t0, 1
        li      t6, 16
        blt     t0, t6, 1b
2:      slli    t5, t0, 2               # W[16..63]
        add     t5, s11, t5
        lw      t1, -60(t5)             # W[t-15]
        srliw   t2, t1, 7
        slliw   t3, t1, 25
        or      t2, t2, t3
        srliw   t3, t1, 18
        slliw   t4, t1, 14
        or      t3, t3, t4
        xor     t2, t2, t3
        srliw   t3, t1, 3
        xor     t2, t2, t3              # sigma0
        lw      t1, -8(t5)              # W[t-2]
        srliw   t3, t1, 17
        slliw   t4, t1, 15
        or      t3, t3, t4
        srliw   t4, t1, 19
        slliw   t6, t1, 13
        or      t4, t4, t6
        xor     t3, t3, t4
        srliw   t4, t1, 10
        xor     t3, t3, t4              # sigma1
        lw      t1, -64(t5)             # W[t-16]
        addw    t1, t1, t2
        lw      t4, -28(t5)             # W[t-7]
        addw    t1, t1, t4
        addw    t1, t1, t3
        sw      t1, 0(t5)
        addi    t0, t0, 1
        li      t6, 64
        blt     t0, t6, 2b
        la      t0, state
        lw      s0, 0(t0)               # a..h
        lw      s1, 4(t0)
        lw      s2, 8(t0)
        lw      s3, 12(t0)
        lw      s4, 16(t0)
        lw      s5, 20(t0)
        lw      s6, 24(t0)
        lw      s7, 28(t0)
        li      s8, 0                   # round
        la      s9, round_constants
3:      srliw   t1, s4, 6               # Sigma1(e)
        slliw   t2, s4, 26
        or      t1, t1, t2
        srliw   t2, s4, 11
        slliw   t3, s4, 21
        or      t2, t2, t3
        xor     t1, t1, t2
        srliw   t2, s4, 25
        slliw   t3, s4, 7
        or      t2, t2, t3
        xor     t1, t1, t2
        and     t2, s4, s5              # Ch(e, f, g)
        not     t3, s4
        and     t3, t3, s6
        xor     t2, t2, t3
        addw    t1, t1, t2
        addw    t1, t1, s7              # + h
        slli    t4, s8, 2
        add     t5, s9, t4
        lw      t5, 0(t5)
        addw    t1, t1, t5              # + K[t]
        add     t5, s11, t4
        lw      t5, 0(t5)
        addw    t1, t1, t5              # T1 = ... + W[t]
        srliw   t2, s0, 2               # Sigma0(a)
        slliw   t3, s0, 30
        or      t2, t2, t3
        srliw   t3, s0, 13
        slliw   t4, s0, 19
        or      t3, t3, t4
        xor     t2, t2, t3
        srliw   t3, s0, 22
        slliw   t4, s0, 10
        or      t3, t3, t4
        xor     t2, t2, t3
        and     t3, s0, s1              # Maj(a, b, c)
        and     t4, s0, s2
        xor     t3, t3, t4
        and     t4, s1, s2
        xor     t3, t3, t4
        addw    t2, t2, t3              # T2
        mv      s7, s6
        mv      s6, s5
        mv      s5, s4
        addw    s4, s3, t1
        mv      s3, s2
        mv      s2, s1
        mv      s1, s0
        addw    s0, t1, t2
        addi    s8, s8, 1
        li      t6, 64
        blt     s8, t6, 3b
        la      t0, state
        lw      t1, 0(t0)
        addw    t1, t1, s0
        sw      t1, 0(t0)
        lw      t1, 4(t0)
        addw    t1, t1, s1
        sw      t1, 4(t0)
        lw      t1, 8(t0)
        addw    t1, t1, s2
        sw      t1, 8(t0)
        lw      t1, 12(t0)
        addw    t1, t1, s3
        sw      t1, 12(t0)
        lw      t1, 16(t0)
        addw    t1, t1, s4
        sw      t1, 16(t0)
        lw      t1, 20(t0)
        addw    t1, t1, s5
        sw      t1, 20(t0)
        lw      t1, 24(t0)
        addw    t1, t1, s6
        sw      t1, 24(t0)
        lw      t1, 28(t0)
        addw    t1, t1, s7
        sw      t1, 28(t0)
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
        addi    sp, sp, 112
        ret

        .section .rodata
program_name:
        .asciz  "sha256"
hexchars:       .ascii "0123456789abcdef"
msg_abc:        .ascii "abc"
msg_448:        .ascii "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
n_empty:        .asciz "sha256('')"
n_abc:          .asciz "sha256('abc')"
n_448:          .asciz "sha256(448 bits)"
n_10000a:       .asciz "sha256(10000 x 'a')"
n_4096:         .asciz "sha256(4096 pattern bytes)"
        .align  2
initial:
        .word   0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a
        .word   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
round_constants:
        .word   0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5
        .word   0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174
        .word   0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da
        .word   0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967
        .word   0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85
        .word   0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070
        .word   0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3
        .word   0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
# Expected digests as bytes (compared 8 bytes at a time).
        .align  3
want_empty:
        .byte   0xe3,0xb0,0xc4,0x42,0x98,0xfc,0x1c,0x14,0x9a,0xfb,0xf4,0xc8,0x99,0x6f,0xb9,0x24
        .byte   0x27,0xae,0x41,0xe4,0x64,0x9b,0x93,0x4c,0xa4,0x95,0x99,0x1b,0x78,0x52,0xb8,0x55
want_abc:
        .byte   0xba,0x78,0x16,0xbf,0x8f,0x01,0xcf,0xea,0x41,0x41,0x40,0xde,0x5d,0xae,0x22,0x23
        .byte   0xb0,0x03,0x61,0xa3,0x96,0x17,0x7a,0x9c,0xb4,0x10,0xff,0x61,0xf2,0x00,0x15,0xad
want_448:
        .byte   0x24,0x8d,0x6a,0x61,0xd2,0x06,0x38,0xb8,0xe5,0xc0,0x26,0x93,0x0c,0x3e,0x60,0x39
        .byte   0xa3,0x3c,0xe4,0x59,0x64,0xff,0x21,0x67,0xf6,0xec,0xed,0xd4,0x19,0xdb,0x06,0xc1
want_10000a:
        .byte   0x27,0xdd,0x1f,0x61,0xb8,0x67,0xb6,0xa0,0xf6,0xe9,0xd8,0xa4,0x1c,0x43,0x23,0x1d
        .byte   0xe5,0x21,0x07,0xe5,0x3a,0xe4,0x24,0xde,0x8f,0x84,0x7b,0x82,0x1d,0xb4,0xb7,0x11

        .bss
        .align  3
state:          .space 32
schedule:       .space 256
tail:           .space 128
digest:         .space 32
big:            .space 10240
