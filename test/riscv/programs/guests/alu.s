# Base integer ALU over many operand pairs: every RV64I register-register
# and register-immediate operation, the W forms and the six branches, each
# applied to every pair of a table of edge-case operands. For each operation
# it prints a hash of all its results; a few exact results are checked too.

        .equ    OPERAND_COUNT, 24

        .text
main:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        la      a0, binary_ops
        la      a1, operands
        li      a2, OPERAND_COUNT
        call    run_binary_table
        la      a0, unary_ops
        la      a1, operands
        li      a2, OPERAND_COUNT
        call    run_unary_table
        call    exact_checks
        li      a0, 0
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# ---- Binary operations: a0 = op(a0, a1) ----
op_add:   add   a0, a0, a1
          ret
op_sub:   sub   a0, a0, a1
          ret
op_sll:   sll   a0, a0, a1
          ret
op_srl:   srl   a0, a0, a1
          ret
op_sra:   sra   a0, a0, a1
          ret
op_slt:   slt   a0, a0, a1
          ret
op_sltu:  sltu  a0, a0, a1
          ret
op_xor:   xor   a0, a0, a1
          ret
op_or:    or    a0, a0, a1
          ret
op_and:   and   a0, a0, a1
          ret
op_addw:  addw  a0, a0, a1
          ret
op_subw:  subw  a0, a0, a1
          ret
op_sllw:  sllw  a0, a0, a1
          ret
op_srlw:  srlw  a0, a0, a1
          ret
op_sraw:  sraw  a0, a0, a1
          ret
# Results into other registers than the sources, and x0 as a source.
op_add_rd: add  a2, a1, a0
          mv    a0, a2
          ret
op_sub_x0: sub  a0, zero, a1
          add   a0, a0, zero
          ret
op_beq:   li    t0, 1
          beq   a0, a1, 1f
          li    t0, 0
1:        mv    a0, t0
          ret
op_bne:   li    t0, 1
          bne   a0, a1, 1f
          li    t0, 0
1:        mv    a0, t0
          ret
op_blt:   li    t0, 1
          blt   a0, a1, 1f
          li    t0, 0
1:        mv    a0, t0
          ret
op_bge:   li    t0, 1
          bge   a0, a1, 1f
          li    t0, 0
1:        mv    a0, t0
          ret
op_bltu:  li    t0, 1
          bltu  a0, a1, 1f
          li    t0, 0
1:        mv    a0, t0
          ret
op_bgeu:  li    t0, 1
          bgeu  a0, a1, 1f
          li    t0, 0
1:        mv    a0, t0
          ret
# Backward branch target: taken when a0 < a1, counts up to 3 iterations.
op_loop:  li    t0, 0
1:        addi  t0, t0, 1
          li    t1, 3
          bge   t0, t1, 2f
          blt   a0, a1, 1b
2:        mv    a0, t0
          ret

# ---- Unary operations (register-immediate): a0 = op(a0) ----
op_addi_max:  addi   a0, a0, 2047
              ret
op_addi_min:  addi   a0, a0, -2048
              ret
op_slti_m1:   slti   a0, a0, -1
              ret
op_slti_5:    slti   a0, a0, 5
              ret
op_sltiu_m1:  sltiu  a0, a0, -1
              ret
op_sltiu_1:   sltiu  a0, a0, 1
              ret
op_xori_m1:   xori   a0, a0, -1
              ret
op_xori_x:    xori   a0, a0, 0x5a5
              ret
op_ori_neg:   ori    a0, a0, -0x700
              ret
op_andi_neg:  andi   a0, a0, -2048
              ret
op_andi_pos:  andi   a0, a0, 0x7f0
              ret
op_slli_1:    slli   a0, a0, 1
              ret
op_slli_31:   slli   a0, a0, 31
              ret
op_slli_63:   slli   a0, a0, 63
              ret
op_srli_1:    srli   a0, a0, 1
              ret
op_srli_32:   srli   a0, a0, 32
              ret
op_srli_63:   srli   a0, a0, 63
              ret
op_srai_1:    srai   a0, a0, 1
              ret
op_srai_32:   srai   a0, a0, 32
              ret
op_srai_63:   srai   a0, a0, 63
              ret
op_addiw_0:   addiw  a0, a0, 0
              ret
op_addiw_max: addiw  a0, a0, 2047
              ret
op_addiw_m1:  addiw  a0, a0, -1
              ret
op_slliw_0:   slliw  a0, a0, 0
              ret
op_slliw_31:  slliw  a0, a0, 31
              ret
op_srliw_0:   srliw  a0, a0, 0
              ret
op_srliw_1:   srliw  a0, a0, 1
              ret
op_srliw_31:  srliw  a0, a0, 31
              ret
op_sraiw_0:   sraiw  a0, a0, 0
              ret
op_sraiw_1:   sraiw  a0, a0, 1
              ret
op_sraiw_31:  sraiw  a0, a0, 31
              ret
op_neg:       neg    a0, a0
              ret
op_negw:      negw   a0, a0
              ret
op_seqz:      seqz   a0, a0
              ret
op_snez:      snez   a0, a0
              ret
op_sltz:      sltz   a0, a0
              ret
op_sgtz:      sgtz   a0, a0
              ret
op_lui:       lui    t0, 0x80000
              add    a0, a0, t0
              lui    t0, 0x7ffff
              xor    a0, a0, t0
              ret
op_li64:      li     t0, 0x123456789abcdef0
              add    a0, a0, t0
              li     t0, -0x7654321
              xor    a0, a0, t0
              ret

# Exact results with known values.
exact_checks:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        li      a0, -1
        srli    a0, a0, 1
        li      a1, 0x7fffffffffffffff
        la      a2, name_srli
        call    check
        li      a0, 0x80000000
        addiw   a0, a0, 0
        li      a1, 0xffffffff80000000
        la      a2, name_sext
        call    check
        li      a0, 0x7fffffff
        addiw   a0, a0, 1
        li      a1, -0x80000000
        la      a2, name_addiw_ovf
        call    check
        li      a0, 1
        li      t0, 65                  # shift amounts use the low 6 bits
        sll     a0, a0, t0
        li      a1, 2
        la      a2, name_sll65
        call    check
        li      a0, 1
        li      t0, 33                  # W shifts use the low 5 bits
        sllw    a0, a0, t0
        li      a1, 2
        la      a2, name_sllw33
        call    check
        li      a0, 0x80000000
        li      t0, 0
        sraw    a0, a0, t0
        li      a1, -0x80000000
        la      a2, name_sraw0
        call    check
        li      a0, -1
        sltiu   a0, a0, -1
        li      a1, 0
        la      a2, name_sltiu
        call    check
        # auipc: two auipc a known distance apart differ by that distance.
1:      auipc   a0, 0
        auipc   a1, 1
        sub     a0, a1, a0
        li      a1, 0x1004
        la      a2, name_auipc
        call    check
        # jal/jalr link values.
        jal     t0, 2f
2:      la      t1, 2b
        sub     a0, t0, t1
        li      a1, 0
        la      a2, name_jal_link
        call    check
        la      t1, 3f
        jalr    t0, 1(t1)               # jalr clears bit 0 of the target
3:      la      t1, 3b
        sub     a0, t0, t1
        li      a1, 0
        la      a2, name_jalr_link
        call    check
        la      ra, 4f                  # jalr with rd = rs1: target first
        jalr    ra, 0(ra)
4:      la      t1, 4b
        sub     a0, ra, t1
        li      a1, 0
        la      a2, name_jalr_same
        call    check
        la      t0, operands            # a load into x0 is performed and discarded
        lw      zero, 8(t0)
        ld      zero, 0(t0)
        mv      a0, zero
        li      a1, 0
        la      a2, name_load_x0
        call    check
        # writes to x0 are discarded
        li      zero, 5
        addi    zero, zero, 7
        mv      a0, zero
        li      a1, 0
        la      a2, name_x0
        call    check
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

        .section .rodata
program_name:
        .asciz  "alu"

        .align  3
operands:
        .dword  0, 1, 2, 3, -1, -2
        .dword  0x7fffffffffffffff, 0x8000000000000000
        .dword  0x7fffffff, 0x80000000, 0xffffffff, 0xffffffff80000000
        .dword  0x100000000, 31, 32, 63, 64
        .dword  0x0123456789abcdef, 0xfedcba9876543210, 0x5555555555555555
        .dword  -7, 0xdeadbeef, 0x00000000fffff800, 0x8000000000000001

binary_ops:
        .dword  op_add, n_add, op_sub, n_sub, op_sll, n_sll, op_srl, n_srl
        .dword  op_sra, n_sra, op_slt, n_slt, op_sltu, n_sltu, op_xor, n_xor
        .dword  op_or, n_or, op_and, n_and, op_addw, n_addw, op_subw, n_subw
        .dword  op_sllw, n_sllw, op_srlw, n_srlw, op_sraw, n_sraw
        .dword  op_add_rd, n_add_rd, op_sub_x0, n_sub_x0
        .dword  op_beq, n_beq, op_bne, n_bne, op_blt, n_blt, op_bge, n_bge
        .dword  op_bltu, n_bltu, op_bgeu, n_bgeu, op_loop, n_loop
        .dword  0, 0

unary_ops:
        .dword  op_addi_max, n_addi_max, op_addi_min, n_addi_min
        .dword  op_slti_m1, n_slti_m1, op_slti_5, n_slti_5
        .dword  op_sltiu_m1, n_sltiu_m1, op_sltiu_1, n_sltiu_1
        .dword  op_xori_m1, n_xori_m1, op_xori_x, n_xori_x
        .dword  op_ori_neg, n_ori_neg, op_andi_neg, n_andi_neg, op_andi_pos, n_andi_pos
        .dword  op_slli_1, n_slli_1, op_slli_31, n_slli_31, op_slli_63, n_slli_63
        .dword  op_srli_1, n_srli_1, op_srli_32, n_srli_32, op_srli_63, n_srli_63
        .dword  op_srai_1, n_srai_1, op_srai_32, n_srai_32, op_srai_63, n_srai_63
        .dword  op_addiw_0, n_addiw_0, op_addiw_max, n_addiw_max, op_addiw_m1, n_addiw_m1
        .dword  op_slliw_0, n_slliw_0, op_slliw_31, n_slliw_31
        .dword  op_srliw_0, n_srliw_0, op_srliw_1, n_srliw_1, op_srliw_31, n_srliw_31
        .dword  op_sraiw_0, n_sraiw_0, op_sraiw_1, n_sraiw_1, op_sraiw_31, n_sraiw_31
        .dword  op_neg, n_neg, op_negw, n_negw, op_seqz, n_seqz, op_snez, n_snez
        .dword  op_sltz, n_sltz, op_sgtz, n_sgtz, op_lui, n_lui, op_li64, n_li64
        .dword  0, 0

n_add:        .asciz "add"
n_sub:        .asciz "sub"
n_sll:        .asciz "sll"
n_srl:        .asciz "srl"
n_sra:        .asciz "sra"
n_slt:        .asciz "slt"
n_sltu:       .asciz "sltu"
n_xor:        .asciz "xor"
n_or:         .asciz "or"
n_and:        .asciz "and"
n_addw:       .asciz "addw"
n_subw:       .asciz "subw"
n_sllw:       .asciz "sllw"
n_srlw:       .asciz "srlw"
n_sraw:       .asciz "sraw"
n_add_rd:     .asciz "add(rd=a2)"
n_sub_x0:     .asciz "sub(x0)"
n_beq:        .asciz "beq"
n_bne:        .asciz "bne"
n_blt:        .asciz "blt"
n_bge:        .asciz "bge"
n_bltu:       .asciz "bltu"
n_bgeu:       .asciz "bgeu"
n_loop:       .asciz "blt-backward"
n_addi_max:   .asciz "addi 2047"
n_addi_min:   .asciz "addi -2048"
n_slti_m1:    .asciz "slti -1"
n_slti_5:     .asciz "slti 5"
n_sltiu_m1:   .asciz "sltiu -1"
n_sltiu_1:    .asciz "sltiu 1"
n_xori_m1:    .asciz "xori -1"
n_xori_x:     .asciz "xori 0x5a5"
n_ori_neg:    .asciz "ori -0x700"
n_andi_neg:   .asciz "andi -2048"
n_andi_pos:   .asciz "andi 0x7f0"
n_slli_1:     .asciz "slli 1"
n_slli_31:    .asciz "slli 31"
n_slli_63:    .asciz "slli 63"
n_srli_1:     .asciz "srli 1"
n_srli_32:    .asciz "srli 32"
n_srli_63:    .asciz "srli 63"
n_srai_1:     .asciz "srai 1"
n_srai_32:    .asciz "srai 32"
n_srai_63:    .asciz "srai 63"
n_addiw_0:    .asciz "addiw 0"
n_addiw_max:  .asciz "addiw 2047"
n_addiw_m1:   .asciz "addiw -1"
n_slliw_0:    .asciz "slliw 0"
n_slliw_31:   .asciz "slliw 31"
n_srliw_0:    .asciz "srliw 0"
n_srliw_1:    .asciz "srliw 1"
n_srliw_31:   .asciz "srliw 31"
n_sraiw_0:    .asciz "sraiw 0"
n_sraiw_1:    .asciz "sraiw 1"
n_sraiw_31:   .asciz "sraiw 31"
n_neg:        .asciz "neg"
n_negw:       .asciz "negw"
n_seqz:       .asciz "seqz"
n_snez:       .asciz "snez"
n_sltz:       .asciz "sltz"
n_sgtz:       .asciz "sgtz"
n_lui:        .asciz "lui"
n_li64:       .asciz "li64"
name_srli:      .asciz "srli -1,1"
name_sext:      .asciz "addiw sext"
name_addiw_ovf: .asciz "addiw overflow"
name_sll65:     .asciz "sll by 65"
name_sllw33:    .asciz "sllw by 33"
name_sraw0:     .asciz "sraw by 0"
name_sltiu:     .asciz "sltiu -1,-1"
name_auipc:     .asciz "auipc distance"
name_jal_link:  .asciz "jal link"
name_jalr_link: .asciz "jalr link"
name_x0:        .asciz "x0 stays 0"
name_jalr_same: .asciz "jalr ra, 0(ra)"
name_load_x0:   .asciz "load into x0"
