# Code written at run time: the program encodes instructions into a buffer,
# executes fence.i and calls them. It patches the immediate of code that has
# already run (the new value must be seen after fence.i), builds a function
# of 200 generated instructions, and a jump table of jal instructions whose
# offsets it computes itself.

        .equ    OPC_OP_IMM, 0x13
        .equ    A0, 10
        .equ    A1, 11
        .equ    RET, 0x00008067         # jalr x0, 0(ra)

        .text
main:
        addi    sp, sp, -48
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)

        # 1. a two-instruction function: addi a0, a0, imm; ret
        la      s0, code
        li      s1, -2048
1:      mv      a0, s1
        call    encode_addi_a0
        sw      a0, 0(s0)
        li      t0, RET
        sw      t0, 4(s0)
        fence.i
        li      a0, 1000
        jalr    s0
        call    print_dec
        call    space
        addi    s1, s1, 455
        li      t0, 2048
        blt     s1, t0, 1b
        call    newline

        # 2. patch code that has already run, many times over
        li      s1, 0
        li      s2, 0
2:      andi    a0, s1, 0x7ff
        call    encode_addi_a0
        sw      a0, 0(s0)
        fence.i
        li      a0, 0
        jalr    s0
        add     s2, s2, a0
        addi    s1, s1, 37
        li      t0, 3700
        blt     s1, t0, 2b
        mv      a1, s2
        la      a0, n_patched
        call    print_kd

        # 3. a generated function: a0 = a0 * 3 + i, for i in 1..200
        la      s0, code
        li      s1, 1
3:      li      t0, (A1 << 7) | (A0 << 15) | (1 << 20) | 0x1013   # slli a1, a0, 1
        sw      t0, 0(s0)
        li      t0, 0x00b50533          # add a0, a0, a1
        sw      t0, 4(s0)
        mv      a0, s1
        call    encode_addi_a0
        sw      a0, 8(s0)
        addi    s0, s0, 12
        addi    s1, s1, 1
        li      t0, 201
        blt     s1, t0, 3b
        li      t0, RET
        sw      t0, 0(s0)
        fence.i
        la      t0, code
        li      a0, 7
        jalr    t0
        mv      a1, a0
        la      a0, n_generated
        call    print_kv

        # 4. a jump table: entry i is "jal x0, target_i", target_i returns i*i
        la      s0, table
        li      s1, 0
4:      slli    t0, s1, 3               # target: li a0, i*i; ret (8 bytes each)
        la      t1, targets
        add     t1, t1, t0
        mul     a0, s1, s1
        call    encode_addi_a0_from_zero
        sw      a0, 0(t1)
        li      t0, RET
        sw      t0, 4(t1)
        slli    t0, s1, 2               # jal x0, target - entry
        add     t2, s0, t0
        sub     a0, t1, t2
        call    encode_jal_x0
        sw      a0, 0(t2)
        addi    s1, s1, 1
        li      t0, 16
        blt     s1, t0, 4b
        fence.i
        li      s1, 0
        li      s2, 0
5:      slli    t0, s1, 2
        add     t0, s0, t0
        jalr    t0
        add     s2, s2, a0
        call    print_udec
        call    space
        addi    s1, s1, 1
        li      t0, 16
        blt     s1, t0, 5b
        call    newline
        mv      a0, s2
        li      a1, 1240                # sum of squares 0..15
        la      a2, n_table
        call    check

        li      a0, 0
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        addi    sp, sp, 48
        ret

# encode_addi_a0(a0 = imm) -> "addi a0, a0, imm"
encode_addi_a0:
        slli    a0, a0, 20
        li      t0, (A0 << 15) | (A0 << 7) | OPC_OP_IMM
        or      a0, a0, t0
        ret

# encode_addi_a0_from_zero(a0 = imm < 2048) -> "addi a0, zero, imm"
encode_addi_a0_from_zero:
        slli    a0, a0, 20
        li      t0, (A0 << 7) | OPC_OP_IMM
        or      a0, a0, t0
        ret

# encode_jal_x0(a0 = offset, even, within +-1 MiB) -> "jal x0, offset"
encode_jal_x0:
        srli    t0, a0, 20              # imm[20] -> bit 31
        andi    t0, t0, 1
        slli    t0, t0, 31
        srli    t1, a0, 1               # imm[10:1] -> bits 30:21
        andi    t1, t1, 0x3ff
        slli    t1, t1, 21
        or      t0, t0, t1
        srli    t1, a0, 11              # imm[11] -> bit 20
        andi    t1, t1, 1
        slli    t1, t1, 20
        or      t0, t0, t1
        srli    t1, a0, 12              # imm[19:12] -> bits 19:12
        andi    t1, t1, 0xff
        slli    t1, t1, 12
        or      t0, t0, t1
        ori     a0, t0, 0x6f
        ret

        .section .rodata
program_name:
        .asciz  "selfmod"
n_patched:      .asciz "sum over patched immediates"
n_generated:    .asciz "generated function(7)"
n_table:        .asciz "jump table"

        .bss
        .align  12
code:   .space  4096
table:  .space  64
targets: .space 128
