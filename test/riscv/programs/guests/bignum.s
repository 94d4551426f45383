# Arbitrary-precision integers: 100!, 2^1000 and the 1000th Fibonacci
# number in 32-bit limbs, printed in decimal by long division by 10^9 with
# divu/remu; a 64-bit-limb schoolbook multiplication with mul/mulhu and
# carries from sltu, squaring a 256-bit number three times; and the 64-bit
# edge values through the runtime's decimal printers.
#
# A number is a doubleword limb count n followed by n little-endian 32-bit
# limbs (for the 64-bit-limb code: n/2 doublewords, the same bytes).

        .equ    MAXLIMBS, 1024
        .equ    BNSIZE, 8 + 4 * MAXLIMBS

        .text
main:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)

        # 100!
        la      a0, bn_a
        li      a1, 1
        call    bn_set
        li      s0, 2
1:      la      a0, bn_a
        mv      a1, s0
        call    bn_mul_small
        addi    s0, s0, 1
        li      t0, 101
        blt     s0, t0, 1b
        la      a0, n_fact
        call    puts
        la      a0, bn_a
        call    bn_print
        call    newline
        la      a0, bn_a
        call    bn_digit_sum
        mv      a1, a0
        la      a0, n_fact_digits
        call    print_kd

        # 2^1000 by doubling
        la      a0, bn_a
        li      a1, 1
        call    bn_set
        li      s0, 0
2:      la      a0, bn_a
        la      a1, bn_a
        la      a2, bn_a
        call    bn_add
        addi    s0, s0, 1
        li      t0, 1000
        blt     s0, t0, 2b
        la      a0, n_pow
        call    puts
        la      a0, bn_a
        call    bn_print
        call    newline
        la      a0, bn_a
        call    bn_digit_sum
        li      a1, 1366
        la      a2, n_pow_digits
        call    check

        # fib(1000): a = 0, b = 1, 1000 times (a, b) = (b, a + b)
        la      a0, bn_a
        li      a1, 0
        call    bn_set
        la      a0, bn_b
        li      a1, 1
        call    bn_set
        li      s0, 0
3:      la      a0, bn_c
        la      a1, bn_a
        la      a2, bn_b
        call    bn_add
        la      a0, bn_a
        la      a1, bn_b
        call    bn_copy
        la      a0, bn_b
        la      a1, bn_c
        call    bn_copy
        addi    s0, s0, 1
        li      t0, 1000
        blt     s0, t0, 3b
        la      a0, n_fib
        call    puts
        la      a0, bn_a
        call    bn_print
        call    newline

        # squaring with 64-bit limbs: x = 4 limbs, x^2, x^4, x^8
        la      a0, bn_a
        la      a1, seed256
        call    bn_copy
        li      s0, 0
4:      la      a0, bn_b
        la      a1, bn_a
        la      a2, bn_a
        call    bn64_mul
        la      a0, bn_a
        la      a1, bn_b
        call    bn_copy
        addi    s0, s0, 1
        li      t0, 3
        blt     s0, t0, 4b
        la      a0, n_pow8
        call    puts
        la      a0, bn_a
        call    bn_print
        call    newline
        la      a0, n_pow8_hex
        call    puts
        la      a0, bn_a
        call    bn_print_hex
        call    newline

        # 64-bit edge values
        li      a0, -1
        call    print_udec
        call    space
        li      a0, 0x8000000000000000
        call    print_dec
        call    space
        li      a0, 0x7fffffffffffffff
        call    print_dec
        call    space
        li      a0, 0
        call    print_dec
        call    space
        li      a0, -1
        call    print_dec
        call    space
        li      a0, 10000000000000000000
        call    print_udec
        call    space
        li      a0, 9999999999999999999
        call    print_udec
        call    newline

        li      a0, 0
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

# bn_set(a0 = bn, a1 = small value)
bn_set:
        li      t0, 1
        sd      t0, 0(a0)
        sw      a1, 8(a0)
        ret

# bn_copy(a0 = dst, a1 = src)
bn_copy:
        ld      t0, 0(a1)
        sd      t0, 0(a0)
1:      beqz    t0, 2f
        lw      t1, 8(a1)
        sw      t1, 8(a0)
        addi    a0, a0, 4
        addi    a1, a1, 4
        addi    t0, t0, -1
        j       1b
2:      ret

# bn_mul_small(a0 = bn, a1 = multiplier < 2^32), in place
bn_mul_small:
        ld      t0, 0(a0)               # limbs
        addi    t1, a0, 8
        li      t2, 0                   # carry
        li      t3, 0
1:      bge     t3, t0, 2f
        lwu     t4, 0(t1)
        mul     t4, t4, a1
        add     t4, t4, t2              # < 2^64: (2^32-1)^2 + 2^32-1
        sw      t4, 0(t1)
        srli    t2, t4, 32
        addi    t1, t1, 4
        addi    t3, t3, 1
        j       1b
2:      beqz    t2, 3f
        sw      t2, 0(t1)
        addi    t0, t0, 1
        sd      t0, 0(a0)
3:      ret

# bn_add(a0 = dst, a1 = x, a2 = y); dst may be x or y
bn_add:
        ld      t0, 0(a1)
        ld      t1, 0(a2)
        bge     t0, t1, 1f
        mv      t0, t1                  # t0 = max limbs
1:      li      t2, 0                   # carry
        li      t3, 0                   # index
2:      bge     t3, t0, 5f
        slli    t4, t3, 2
        li      t5, 0
        ld      t6, 0(a1)
        bge     t3, t6, 3f
        add     t6, a1, t4
        lwu     t5, 8(t6)
3:      li      a3, 0
        ld      t6, 0(a2)
        bge     t3, t6, 4f
        add     t6, a2, t4
        lwu     a3, 8(t6)
4:      add     t5, t5, a3
        add     t5, t5, t2
        srli    t2, t5, 32
        add     t6, a0, t4
        sw      t5, 8(t6)
        addi    t3, t3, 1
        j       2b
5:      beqz    t2, 6f
        slli    t4, t0, 2
        add     t6, a0, t4
        sw      t2, 8(t6)
        addi    t0, t0, 1
6:      sd      t0, 0(a0)
        ret

# bn64_mul(a0 = dst, a1 = x, a2 = y): x and y have an even limb count;
# dst must differ from both.
bn64_mul:
        ld      t0, 0(a1)
        srli    t0, t0, 1               # doublewords of x
        ld      t1, 0(a2)
        srli    t1, t1, 1               # doublewords of y
        add     t2, t0, t1
        slli    t3, t2, 1
        sd      t3, 0(a0)
        addi    t4, a0, 8               # zero the product
        mv      t5, t2
1:      sd      zero, 0(t4)
        addi    t4, t4, 8
        addi    t5, t5, -1
        bnez    t5, 1b
        li      a3, 0                   # i
2:      bge     a3, t0, 6f
        slli    t4, a3, 3
        add     t4, a1, t4
        ld      a4, 8(t4)               # x[i]
        li      a5, 0                   # carry
        li      a6, 0                   # j
3:      bge     a6, t1, 4f
        slli    t4, a6, 3
        add     t4, a2, t4
        ld      t5, 8(t4)               # y[j]
        mul     t6, a4, t5
        mulhu   t5, a4, t5
        add     t6, t6, a5              # + carry
        sltu    a7, t6, a5
        add     t5, t5, a7
        add     t4, a3, a6              # + dst[i + j]
        slli    t4, t4, 3
        add     t4, a0, t4
        ld      a7, 8(t4)
        add     t6, t6, a7
        sltu    a7, t6, a7
        add     t5, t5, a7
        sd      t6, 8(t4)
        mv      a5, t5
        addi    a6, a6, 1
        j       3b
4:      add     t4, a3, t1
        slli    t4, t4, 3
        add     t4, a0, t4
        sd      a5, 8(t4)
        addi    a3, a3, 1
        j       2b
6:      ret

# bn_digit_sum(a0 = bn) -> sum of decimal digits (destroys bn)
bn_digit_sum:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        mv      s0, a0
        li      s1, 0
1:      mv      a0, s0
        call    bn_is_zero
        bnez    a0, 3f
        mv      a0, s0
        li      a1, 1000000000
        call    bn_divmod_small
        li      t1, 10
2:      remu    t2, a0, t1
        add     s1, s1, t2
        divu    a0, a0, t1
        bnez    a0, 2b
        j       1b
3:      mv      a0, s1
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

# bn_is_zero(a0 = bn) -> 1 if zero
bn_is_zero:
        ld      t0, 0(a0)
1:      beqz    t0, 2f
        lw      t1, 8(a0)
        bnez    t1, 3f
        addi    a0, a0, 4
        addi    t0, t0, -1
        j       1b
2:      li      a0, 1
        ret
3:      li      a0, 0
        ret

# bn_divmod_small(a0 = bn, a1 = divisor < 2^31) -> remainder; bn /= divisor
bn_divmod_small:
        ld      t0, 0(a0)
        li      t2, 0                   # remainder
1:      beqz    t0, 2f
        addi    t0, t0, -1
        slli    t3, t0, 2
        add     t3, a0, t3
        lwu     t4, 8(t3)
        slli    t5, t2, 32
        or      t5, t5, t4              # < 2^63 since remainder < 2^31
        divu    t6, t5, a1
        remu    t2, t5, a1
        sw      t6, 8(t3)
        j       1b
2:      ld      t0, 0(a0)               # drop leading zero limbs
3:      beqz    t0, 4f
        slli    t3, t0, 2
        add     t3, a0, t3
        lw      t4, 4(t3)
        bnez    t4, 4f
        addi    t0, t0, -1
        j       3b
4:      sd      t0, 0(a0)
        mv      a0, t2
        ret

# bn_print(a0 = bn): decimal; works on a copy
bn_print:
        addi    sp, sp, -48
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        mv      a1, a0
        la      a0, bn_tmp
        call    bn_copy
        la      s0, chunks              # base-10^9 chunks, least significant first
        li      s1, 0
1:      la      a0, bn_tmp
        li      a1, 1000000000
        call    bn_divmod_small
        slli    t0, s1, 3
        add     t0, s0, t0
        sd      a0, 0(t0)
        addi    s1, s1, 1
        la      a0, bn_tmp
        call    bn_is_zero
        beqz    a0, 1b
        addi    s1, s1, -1              # the top chunk without padding
        slli    t0, s1, 3
        add     t0, s0, t0
        ld      a0, 0(t0)
        call    print_udec
2:      beqz    s1, 4f
        addi    s1, s1, -1
        slli    t0, s1, 3
        add     t0, s0, t0
        ld      s2, 0(t0)
        li      t1, 100000000           # nine digits, zero padded
3:      divu    a0, s2, t1
        remu    s2, s2, t1
        addi    a0, a0, '0'
        sd      t1, 32(sp)
        call    putchar
        ld      t1, 32(sp)
        li      t2, 10
        divu    t1, t1, t2
        bnez    t1, 3b
        j       2b
4:      ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        addi    sp, sp, 48
        ret

# bn_print_hex(a0 = bn): limbs from the top, 8 digits each
bn_print_hex:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        mv      s0, a0
        ld      s1, 0(a0)
1:      beqz    s1, 2f
        addi    s1, s1, -1
        slli    t0, s1, 2
        add     t0, s0, t0
        lwu     a0, 8(t0)
        call    print_hex32
        j       1b
2:      ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

        .section .rodata
program_name:
        .asciz  "bignum"
n_fact:         .asciz "100! = "
n_fact_digits:  .asciz "digit sum of 100!"
n_pow:          .asciz "2^1000 = "
n_pow_digits:   .asciz "digit sum of 2^1000"
n_fib:          .asciz "fib(1000) = "
n_pow8:         .asciz "x^8 = "
n_pow8_hex:     .asciz "x^8 = 0x"
        .align  3
seed256:
        .dword  8                       # 8 32-bit limbs = 4 doublewords
        .dword  0xfedcba9876543210, 0x0f1e2d3c4b5a6978, 0xffffffffffffffff, 0x8000000000000001

        .bss
        .align  3
bn_a:   .space  BNSIZE
bn_b:   .space  BNSIZE
bn_c:   .space  BNSIZE
bn_tmp: .space  BNSIZE
chunks: .space  8 * 512
