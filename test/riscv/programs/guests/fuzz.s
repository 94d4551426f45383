# Random instruction blocks: a xorshift generator writes blocks of 64 random
# register-register, register-immediate, W-form, M-extension and LUI/AUIPC
# instructions (any rd, rs1 and rs2 among x0..x31, so every aliasing of
# sources and destination occurs) into a buffer, loads all 31 registers with
# random and edge-case values, runs the block after fence.i and stores all
# registers. The hash of every block's registers is printed every 125 blocks.
# A second phase mixes in loads and stores of every width (one in four
# instructions) at random offsets from gp, which points into the middle of a
# 4 KiB random data area and which no generated instruction writes; many are
# misaligned and some cross into the next page. The area is hashed as well.
#
# The block may clobber every register, sp and ra included: the trampoline
# keeps the program's state in memory and the block's end, a generated jal
# to block_end, swaps x31 with sscratch (which holds the output address).

        .equ    BLOCKS, 2000
        .equ    MEMORY_BLOCKS, 1000
        .equ    BLOCK_LEN, 64
        .equ    TEMPLATE_COUNT, 46
        .equ    MEMORY_TEMPLATE_COUNT, 61
        .equ    EDGE_COUNT, 10
        .equ    GP, 3

        .text
main:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        la      a0, data_area           # random data for the memory phase
        li      a1, 8192
        li      a2, 0x0123456789abcdef
1:      slli    t0, a2, 13
        xor     a2, a2, t0
        srli    t0, a2, 7
        xor     a2, a2, t0
        slli    t0, a2, 17
        xor     a2, a2, t0
        sd      a2, 0(a0)
        addi    a0, a0, 8
        addi    a1, a1, -8
        bnez    a1, 1b
        la      a0, s_alu
        call    puts
        li      a0, 0x2545f4914f6cdd1d
        li      a1, BLOCKS
        li      a2, TEMPLATE_COUNT
        call    fuzz
        la      a0, s_memory
        call    puts
        li      a0, 0x9e3779b97f4a7c15
        li      a1, MEMORY_BLOCKS
        li      a2, MEMORY_TEMPLATE_COUNT
        call    fuzz
        li      a0, 0
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# fuzz(a0 = seed, a1 = blocks, a2 = templates to draw from)
fuzz:
        addi    sp, sp, -64
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        sd      s4, 40(sp)
        sd      s5, 48(sp)
        mv      s0, a0                  # generator state
        mv      s4, a1
        mv      s5, a2
        call    hash_init
        mv      s2, a0                  # running hash
        li      s1, 0                   # block number
1:      mv      a0, s0
        mv      a1, s5
        call    generate_block
        mv      s0, a0
        call    random_registers
        mv      s0, a0
        la      t0, reg_init            # gp: the middle of the data area
        la      t1, data_area + 2048
        sd      t1, 8 * GP(t0)
        fence.i
        call    run_block
        la      s3, reg_out             # hash x1..x31 as the block left them
        li      t3, 31
2:      ld      a1, 8(s3)
        mv      a0, s2
        call    mix
        mv      s2, a0
        addi    s3, s3, 8
        addi    t3, t3, -1
        bnez    t3, 2b
        addi    s1, s1, 1
        li      t0, 125
        remu    t0, s1, t0
        bnez    t0, 4f
        la      s3, data_area           # at checkpoints: the data area too
        li      t3, 1024
3:      ld      a1, 0(s3)
        mv      a0, s2
        call    mix
        mv      s2, a0
        addi    s3, s3, 8
        addi    t3, t3, -1
        bnez    t3, 3b
        mv      a0, s1
        call    print_udec
        call    space
        mv      a0, s2
        call    print_hex
        call    newline
4:      blt     s1, s4, 1b
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        ld      s4, 40(sp)
        ld      s5, 48(sp)
        addi    sp, sp, 64
        ret

# next(a0 = state) -> a0 = new state (xorshift64)
next:
        slli    t0, a0, 13
        xor     a0, a0, t0
        srli    t0, a0, 7
        xor     a0, a0, t0
        slli    t0, a0, 17
        xor     a0, a0, t0
        ret

# generate_block(a0 = state, a1 = templates to draw from) -> state:
# BLOCK_LEN random instructions and a jal to block_end at `block`. An
# instruction that would write gp writes tp instead.
generate_block:
        addi    sp, sp, -48
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        mv      s0, a0
        mv      s3, a1
        la      s1, block
        li      s2, BLOCK_LEN
1:      mv      a0, s0
        call    next
        mv      s0, a0
        srli    t2, s0, 40              # template = high bits mod count
        remu    t2, t2, s3
        slli    t2, t2, 3
        la      t3, templates
        add     t3, t3, t2
        lwu     t4, 0(t3)               # base
        lwu     t5, 4(t3)               # random bits
        and     t6, s0, t5
        or      t4, t4, t6
        andi    t6, t4, 0x7f            # stores have no rd
        li      t5, 0x23
        beq     t6, t5, 2f
        srli    t6, t4, 7
        andi    t6, t6, 31
        li      t5, GP
        bne     t6, t5, 2f
        xori    t4, t4, (GP ^ 4) << 7   # rd = tp
2:      sw      t4, 0(s1)
        addi    s1, s1, 4
        addi    s2, s2, -1
        bnez    s2, 1b
        la      a0, block_end           # jal x0, block_end - here
        sub     a0, a0, s1
        call    encode_jal_x0
        sw      a0, 0(s1)
        mv      a0, s0
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        addi    sp, sp, 48
        ret

# random_registers(a0 = state) -> state: reg_init[1..31] random or edge values
random_registers:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        mv      s0, a0
        li      s1, 1
1:      mv      a0, s0
        call    next
        mv      s0, a0
        la      t1, reg_init
        slli    t2, s1, 3
        add     t1, t1, t2
        andi    t3, s0, 3               # one in four: an edge value
        bnez    t3, 2f
        srli    t3, s0, 8
        li      t4, EDGE_COUNT
        remu    t3, t3, t4
        slli    t3, t3, 3
        la      t4, edges
        add     t4, t4, t3
        ld      t5, 0(t4)
        sd      t5, 0(t1)
        j       3f
2:      sd      s0, 0(t1)
3:      addi    s1, s1, 1
        li      t0, 32
        blt     s1, t0, 1b
        mv      a0, s0
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

# encode_jal_x0(a0 = offset) -> "jal x0, offset"
encode_jal_x0:
        srli    t0, a0, 20
        andi    t0, t0, 1
        slli    t0, t0, 31
        srli    t1, a0, 1
        andi    t1, t1, 0x3ff
        slli    t1, t1, 21
        or      t0, t0, t1
        srli    t1, a0, 11
        andi    t1, t1, 1
        slli    t1, t1, 20
        or      t0, t0, t1
        srli    t1, a0, 12
        andi    t1, t1, 0xff
        slli    t1, t1, 12
        or      t0, t0, t1
        ori     a0, t0, 0x6f
        ret

# run_block: save the program's state, load every register, run the block.
run_block:
        la      t0, saved
        sd      ra, 0(t0)
        sd      sp, 8(t0)
        sd      gp, 16(t0)
        sd      tp, 24(t0)
        sd      s0, 32(t0)
        sd      s1, 40(t0)
        sd      s2, 48(t0)
        sd      s3, 56(t0)
        sd      s4, 64(t0)
        sd      s5, 72(t0)
        sd      s6, 80(t0)
        sd      s7, 88(t0)
        sd      s8, 96(t0)
        sd      s9, 104(t0)
        sd      s10, 112(t0)
        sd      s11, 120(t0)
        la      t0, reg_out
        csrw    sscratch, t0
        la      x31, reg_init
        ld      x1, 8(x31)
        ld      x2, 16(x31)
        ld      x3, 24(x31)
        ld      x4, 32(x31)
        ld      x5, 40(x31)
        ld      x6, 48(x31)
        ld      x7, 56(x31)
        ld      x8, 64(x31)
        ld      x9, 72(x31)
        ld      x10, 80(x31)
        ld      x11, 88(x31)
        ld      x12, 96(x31)
        ld      x13, 104(x31)
        ld      x14, 112(x31)
        ld      x15, 120(x31)
        ld      x16, 128(x31)
        ld      x17, 136(x31)
        ld      x18, 144(x31)
        ld      x19, 152(x31)
        ld      x20, 160(x31)
        ld      x21, 168(x31)
        ld      x22, 176(x31)
        ld      x23, 184(x31)
        ld      x24, 192(x31)
        ld      x25, 200(x31)
        ld      x26, 208(x31)
        ld      x27, 216(x31)
        ld      x28, 224(x31)
        ld      x29, 232(x31)
        ld      x30, 240(x31)
        ld      x31, 248(x31)
        j       block

block_end:
        csrrw   x31, sscratch, x31      # x31 = reg_out; sscratch = the block's x31
        sd      x1, 8(x31)
        sd      x2, 16(x31)
        sd      x3, 24(x31)
        sd      x4, 32(x31)
        sd      x5, 40(x31)
        sd      x6, 48(x31)
        sd      x7, 56(x31)
        sd      x8, 64(x31)
        sd      x9, 72(x31)
        sd      x10, 80(x31)
        sd      x11, 88(x31)
        sd      x12, 96(x31)
        sd      x13, 104(x31)
        sd      x14, 112(x31)
        sd      x15, 120(x31)
        sd      x16, 128(x31)
        sd      x17, 136(x31)
        sd      x18, 144(x31)
        sd      x19, 152(x31)
        sd      x20, 160(x31)
        sd      x21, 168(x31)
        sd      x22, 176(x31)
        sd      x23, 184(x31)
        sd      x24, 192(x31)
        sd      x25, 200(x31)
        sd      x26, 208(x31)
        sd      x27, 216(x31)
        sd      x28, 224(x31)
        sd      x29, 232(x31)
        sd      x30, 240(x31)
        csrr    x1, sscratch
        sd      x1, 248(x31)
        la      t0, saved
        ld      ra, 0(t0)
        ld      sp, 8(t0)
        ld      gp, 16(t0)
        ld      tp, 24(t0)
        ld      s0, 32(t0)
        ld      s1, 40(t0)
        ld      s2, 48(t0)
        ld      s3, 56(t0)
        ld      s4, 64(t0)
        ld      s5, 72(t0)
        ld      s6, 80(t0)
        ld      s7, 88(t0)
        ld      s8, 96(t0)
        ld      s9, 104(t0)
        ld      s10, 112(t0)
        ld      s11, 120(t0)
        ret

        .section .rodata
program_name:
        .asciz  "fuzz"
s_alu:  .asciz  "alu blocks:\n"
s_memory: .asciz "alu and memory blocks:\n"
        .align  3
# {base encoding, mask of the bits chosen at random} (words)
        .equ    R_BITS, 0x01ff8f80      # rd, rs1, rs2
        .equ    I_BITS, 0xffff8f80      # rd, rs1, imm[11:0]
        .equ    SH64_BITS, 0x03ff8f80   # rd, rs1, shamt[5:0]
        .equ    SH32_BITS, 0x01ff8f80   # rd, rs1, shamt[4:0]
        .equ    U_BITS, 0xffffff80      # rd, imm[31:12]
templates:
        .word   0x00000033, R_BITS      # add
        .word   0x40000033, R_BITS      # sub
        .word   0x00001033, R_BITS      # sll
        .word   0x00002033, R_BITS      # slt
        .word   0x00003033, R_BITS      # sltu
        .word   0x00004033, R_BITS      # xor
        .word   0x00005033, R_BITS      # srl
        .word   0x40005033, R_BITS      # sra
        .word   0x00006033, R_BITS      # or
        .word   0x00007033, R_BITS      # and
        .word   0x02000033, R_BITS      # mul
        .word   0x02001033, R_BITS      # mulh
        .word   0x02002033, R_BITS      # mulhsu
        .word   0x02003033, R_BITS      # mulhu
        .word   0x02004033, R_BITS      # div
        .word   0x02005033, R_BITS      # divu
        .word   0x02006033, R_BITS      # rem
        .word   0x02007033, R_BITS      # remu
        .word   0x0000003b, R_BITS      # addw
        .word   0x4000003b, R_BITS      # subw
        .word   0x0000103b, R_BITS      # sllw
        .word   0x0000503b, R_BITS      # srlw
        .word   0x4000503b, R_BITS      # sraw
        .word   0x0200003b, R_BITS      # mulw
        .word   0x0200403b, R_BITS      # divw
        .word   0x0200503b, R_BITS      # divuw
        .word   0x0200603b, R_BITS      # remw
        .word   0x0200703b, R_BITS      # remuw
        .word   0x00000013, I_BITS      # addi
        .word   0x00002013, I_BITS      # slti
        .word   0x00003013, I_BITS      # sltiu
        .word   0x00004013, I_BITS      # xori
        .word   0x00006013, I_BITS      # ori
        .word   0x00007013, I_BITS      # andi
        .word   0x0000001b, I_BITS      # addiw
        .word   0x00001013, SH64_BITS   # slli
        .word   0x00005013, SH64_BITS   # srli
        .word   0x40005013, SH64_BITS   # srai
        .word   0x0000101b, SH32_BITS   # slliw
        .word   0x0000501b, SH32_BITS   # srliw
        .word   0x4000501b, SH32_BITS   # sraiw
        .word   0x00000037, U_BITS      # lui
        .word   0x00000017, U_BITS      # auipc
        .word   0x00000033, R_BITS      # add (again: common in real code)
        .word   0x00000013, I_BITS      # addi (again)
        .word   0x02000033, R_BITS      # mul (again)
# the memory phase adds these: base gp, random rd/rs2 and offset
        .equ    LS_BITS, 0xfff00f80
        .equ    LOAD_GP, 0x03 | (GP << 15)
        .equ    STORE_GP, 0x23 | (GP << 15)
        .word   LOAD_GP | (0 << 12), LS_BITS    # lb
        .word   LOAD_GP | (1 << 12), LS_BITS    # lh
        .word   LOAD_GP | (2 << 12), LS_BITS    # lw
        .word   LOAD_GP | (3 << 12), LS_BITS    # ld
        .word   LOAD_GP | (4 << 12), LS_BITS    # lbu
        .word   LOAD_GP | (5 << 12), LS_BITS    # lhu
        .word   LOAD_GP | (6 << 12), LS_BITS    # lwu
        .word   LOAD_GP | (3 << 12), LS_BITS    # ld (again)
        .word   STORE_GP | (0 << 12), LS_BITS   # sb
        .word   STORE_GP | (1 << 12), LS_BITS   # sh
        .word   STORE_GP | (2 << 12), LS_BITS   # sw
        .word   STORE_GP | (3 << 12), LS_BITS   # sd
        .word   STORE_GP | (3 << 12), LS_BITS   # sd (again)
        .word   STORE_GP | (2 << 12), LS_BITS   # sw (again)
        .word   LOAD_GP | (2 << 12), LS_BITS    # lw (again)
        .align  3
edges:
        .dword  0, 1, -1, 0x8000000000000000, 0x7fffffffffffffff
        .dword  0x80000000, 0x7fffffff, 0xffffffff, 0xffffffff80000000, 2

        .bss
        .align  3
saved:          .space 128
reg_init:       .space 256
reg_out:        .space 256
        .align  12
block:          .space 4 * (BLOCK_LEN + 1)
        .align  12
data_area:      .space 8192             # used: [0, 4096 + 6]
