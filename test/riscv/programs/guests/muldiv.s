# The M extension over many operand pairs: mul, mulh, mulhsu, mulhu, mulw,
# div[u], rem[u] and their W forms, hashed over every pair of an edge-case
# operand table; then the special cases the spec defines (division by zero,
# signed overflow) checked exactly and a readable table of signed division.

        .equ    OPERAND_COUNT, 26
        .equ    SMALL_COUNT, 8

        .text
main:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        la      a0, ops
        la      a1, operands
        li      a2, OPERAND_COUNT
        call    run_binary_table
        call    special_cases
        call    division_table
        li      a0, 0
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

op_mul:     mul     a0, a0, a1
            ret
op_mulh:    mulh    a0, a0, a1
            ret
op_mulhsu:  mulhsu  a0, a0, a1
            ret
op_mulhu:   mulhu   a0, a0, a1
            ret
op_mulw:    mulw    a0, a0, a1
            ret
op_div:     div     a0, a0, a1
            ret
op_divu:    divu    a0, a0, a1
            ret
op_rem:     rem     a0, a0, a1
            ret
op_remu:    remu    a0, a0, a1
            ret
op_divw:    divw    a0, a0, a1
            ret
op_divuw:   divuw   a0, a0, a1
            ret
op_remw:    remw    a0, a0, a1
            ret
op_remuw:   remuw   a0, a0, a1
            ret
# The recommended mulh/mul fusion order, and a 128-bit product check:
# hi:lo of x*y from mulhu/mul recombined with mulh via the sign corrections.
op_mulh_fused:
            mulh    t0, a0, a1
            mul     t1, a0, a1
            xor     a0, t0, t1
            ret
op_div_rem_fused:
            div     t0, a0, a1
            rem     t1, a0, a1
            # q * y + r == x must hold whenever y != 0 (and for overflow)
            mul     t2, t0, a1
            add     t2, t2, t1
            sub     t2, t2, a0
            beqz    a1, 1f
            snez    t2, t2
            slli    t2, t2, 63
1:          xor     a0, t0, t1
            xor     a0, a0, t2
            ret
op_divu_remu_fused:
            divu    t0, a0, a1
            remu    t1, a0, a1
            slli    t1, t1, 1
            add     a0, t0, t1
            ret
# The same register as source and destination, and rd == rs2.
op_mul_self:
            mul     a1, a0, a1
            mul     a0, a1, a1
            ret
op_divw_rd_rs2:
            divw    a1, a0, a1
            mv      a0, a1
            ret

special_cases:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        la      s0, special_table
1:      ld      t0, 0(s0)               # operation
        beqz    t0, 2f
        ld      a0, 8(s0)
        ld      a1, 16(s0)
        jalr    t0
        ld      a1, 24(s0)
        ld      a2, 32(s0)
        call    check
        addi    s0, s0, 40
        j       1b
2:      ld      ra, 0(sp)
        ld      s0, 8(sp)
        addi    sp, sp, 32
        ret

# Prints "x / y = q rem r" (signed decimal) for every pair of small operands.
division_table:
        addi    sp, sp, -48
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        li      s0, 0
1:      li      s1, 0
2:      la      t0, small
        slli    t1, s0, 3
        add     t1, t0, t1
        ld      s2, 0(t1)
        slli    t1, s1, 3
        add     t1, t0, t1
        ld      s3, 0(t1)
        mv      a0, s2
        call    print_dec
        la      a0, s_div
        call    puts
        mv      a0, s3
        call    print_dec
        la      a0, s_eq
        call    puts
        div     a0, s2, s3
        call    print_dec
        la      a0, s_rem
        call    puts
        rem     a0, s2, s3
        call    print_dec
        la      a0, s_w
        call    puts
        divw    a0, s2, s3
        call    print_dec
        call    space
        remw    a0, s2, s3
        call    print_dec
        call    space
        divuw   a0, s2, s3
        call    print_dec
        call    space
        remuw   a0, s2, s3
        call    print_dec
        call    newline
        addi    s1, s1, 1
        li      t0, SMALL_COUNT
        blt     s1, t0, 2b
        addi    s0, s0, 1
        blt     s0, t0, 1b
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        addi    sp, sp, 48
        ret

        .section .rodata
program_name:
        .asciz  "muldiv"
s_div:  .asciz  " / "
s_eq:   .asciz  " = "
s_rem:  .asciz  " rem "
s_w:    .asciz  "; w: "

        .align  3
operands:
        .dword  0, 1, 2, 3, 7, 10, -1, -2, -3, -7
        .dword  0x7fffffffffffffff, 0x8000000000000000, 0x8000000000000001
        .dword  0x7fffffff, 0x80000000, 0xffffffff, 0xffffffff80000000
        .dword  0x100000000, 0x100000001, 0xffffffff00000000
        .dword  0x0123456789abcdef, 0xfedcba9876543210, 0x5555555555555555
        .dword  0xdeadbeefcafebabe, 0x00000000fffffffe, 0x3b9aca00

small:
        .dword  0, 7, -7, 3, -3, 0x7fffffff, 0xffffffff80000000, 0x123456789
# {operation, x, y, expected, name}
special_table:
        .dword  op_div, 5, 0, -1, n_div0
        .dword  op_divu, 5, 0, -1, n_divu0
        .dword  op_rem, 5, 0, 5, n_rem0
        .dword  op_remu, -5, 0, -5, n_remu0
        .dword  op_div, 0x8000000000000000, -1, 0x8000000000000000, n_div_ovf
        .dword  op_rem, 0x8000000000000000, -1, 0, n_rem_ovf
        .dword  op_divw, 0x1234567880000000, -1, 0xffffffff80000000, n_divw_ovf
        .dword  op_remw, 0x80000000, 0xffffffff, 0, n_remw_ovf
        .dword  op_divw, 0x100000005, 0, -1, n_divw0
        .dword  op_divuw, 0x100000005, 0x100000000, -1, n_divuw0
        .dword  op_remw, 0x1fffffff0, 0, 0xfffffffffffffff0, n_remw0
        .dword  op_remuw, 0x1fffffff0, 0, 0xfffffffffffffff0, n_remuw0
        .dword  op_remuw, 0x80000007, 0x10, 7, n_remuw_x
        .dword  op_divuw, 0xffffffff, 2, 0x7fffffff, n_divuw
        .dword  op_divuw, 0xfffffffe, 1, 0xfffffffffffffffe, n_divuw_sext
        .dword  op_div, -7, 2, -3, n_div_trunc
        .dword  op_rem, -7, 2, -1, n_rem_sign
        .dword  op_rem, 7, -2, 1, n_rem_sign2
        .dword  op_mulh, -1, -1, 0, n_mulh_m1
        .dword  op_mulhu, -1, -1, 0xfffffffffffffffe, n_mulhu_m1
        .dword  op_mulhsu, -1, -1, -1, n_mulhsu_m1
        .dword  op_mulhsu, 2, -1, 1, n_mulhsu_2
        .dword  op_mulh, 0x8000000000000000, 0x8000000000000000, 0x4000000000000000, n_mulh_min
        .dword  op_mulw, 0x10000, 0x10000, 0, n_mulw_wrap
        .dword  op_mulw, 0x7fffffff, 2, -2, n_mulw_sext
        .dword  op_mul, 0x100000001, 0x100000001, 0x200000001, n_mul
        .dword  0, 0, 0, 0, 0

n_mul:          .asciz "mul"
n_mulh_fused:   .asciz "mulh^mul"
n_mulh:         .asciz "mulh"
n_mulhsu:       .asciz "mulhsu"
n_mulhu:        .asciz "mulhu"
n_mulw:         .asciz "mulw"
n_div:          .asciz "div"
n_divu:         .asciz "divu"
n_rem:          .asciz "rem"
n_remu:         .asciz "remu"
n_divw:         .asciz "divw"
n_divuw:        .asciz "divuw"
n_remw:         .asciz "remw"
n_remuw:        .asciz "remuw"
n_div_rem:      .asciz "div/rem identity"
n_divu_remu:    .asciz "divu/remu"
n_mul_self:     .asciz "mul rd=rs"
n_divw_rd_rs2:  .asciz "divw rd=rs2"
n_div0:         .asciz "div by 0"
n_divu0:        .asciz "divu by 0"
n_rem0:         .asciz "rem by 0"
n_remu0:        .asciz "remu by 0"
n_div_ovf:      .asciz "div overflow"
n_rem_ovf:      .asciz "rem overflow"
n_divw_ovf:     .asciz "divw overflow"
n_remw_ovf:     .asciz "remw overflow"
n_divw0:        .asciz "divw by 0"
n_divuw0:       .asciz "divuw by 0"
n_remw0:        .asciz "remw by 0"
n_remuw0:       .asciz "remuw by 0"
n_remuw_x:      .asciz "remuw 0x80000007"
n_divuw_sext:   .asciz "divuw sign-extends"
n_div_trunc:    .asciz "div truncates"
n_rem_sign:     .asciz "rem sign of dividend"
n_rem_sign2:    .asciz "rem sign of dividend 2"
n_mulh_m1:      .asciz "mulh -1*-1"
n_mulhu_m1:     .asciz "mulhu max*max"
n_mulhsu_m1:    .asciz "mulhsu -1*max"
n_mulhsu_2:     .asciz "mulhsu 2*max"
n_mulh_min:     .asciz "mulh min*min"
n_mulw_wrap:    .asciz "mulw wraps"
n_mulw_sext:    .asciz "mulw sign-extends"

        .align  3
ops:
        .dword  op_mul, n_mul, op_mulh, n_mulh, op_mulhsu, n_mulhsu, op_mulhu, n_mulhu
        .dword  op_mulw, n_mulw, op_div, n_div, op_divu, n_divu, op_rem, n_rem
        .dword  op_remu, n_remu, op_divw, n_divw, op_divuw, n_divuw, op_remw, n_remw
        .dword  op_remuw, n_remuw, op_mulh_fused, n_mulh_fused
        .dword  op_div_rem_fused, n_div_rem, op_divu_remu_fused, n_divu_remu
        .dword  op_mul_self, n_mul_self, op_divw_rd_rs2, n_divw_rd_rs2
        .dword  0, 0
