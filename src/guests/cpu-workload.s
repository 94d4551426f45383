# faultline's CPU benchmark workload: an integer mix in the spirit of
# CoreMark, run for a number of rounds given in a0 (0 means 200). Each round
# sieves primes, hashes a buffer with 64-bit FNV-1a, computes a bitwise
# CRC-32, sorts an array by insertion and walks a linked list. It prints the
# combined checksum in hex and shuts down through SBI SRST.

        .equ    SIEVE_SIZE, 8192
        .equ    HASH_BYTES, 2048
        .equ    SORT_WORDS, 128
        .equ    LIST_NODES, 256

        .text
        .globl  _start
_start:
        la      sp, stack_top
        mv      s0, a0              # hart id (unused) would arrive here under SBI
        li      s1, 200             # rounds
        la      t0, rounds
        ld      t1, 0(t0)
        beqz    t1, 1f
        mv      s1, t1
1:      li      s2, 0               # checksum
        call    build_list

round_loop:
        call    sieve
        add     s2, s2, a0
        call    fnv_hash
        xor     s2, s2, a0
        call    crc32
        add     s2, s2, a0
        call    sort
        add     s2, s2, a0
        call    walk_list
        xor     s2, s2, a0
        slli    t0, s2, 13
        xor     s2, s2, t0
        addi    s1, s1, -1
        bnez    s1, round_loop

        la      t0, result
        sd      s2, 0(t0)
        mv      a0, s2
        call    print_hex
        li      a0, '\n'
        call    putchar
        li      a7, 0x53525354      # SRST: shutdown, no reason
        li      a6, 0
        li      a0, 0
        li      a1, 0
        ecall
2:      j       2b

# Count primes below SIEVE_SIZE.
sieve:
        la      t0, sieve_buf
        li      t1, SIEVE_SIZE
        li      t2, 0
1:      add     t3, t0, t2          # clear the buffer
        sb      zero, 0(t3)
        addi    t2, t2, 1
        blt     t2, t1, 1b
        li      a0, 0
        li      t2, 2
2:      add     t3, t0, t2
        lbu     t4, 0(t3)
        bnez    t4, 4f
        addi    a0, a0, 1
        mul     t5, t2, t2
        bge     t5, t1, 4f
3:      add     t3, t0, t5
        li      t4, 1
        sb      t4, 0(t3)
        add     t5, t5, t2
        blt     t5, t1, 3b
4:      addi    t2, t2, 1
        blt     t2, t1, 2b
        ret

# 64-bit FNV-1a over HASH_BYTES bytes of the sieve buffer.
fnv_hash:
        la      t0, sieve_buf
        li      t1, HASH_BYTES
        li      a0, 0xcbf29ce484222325
        li      t2, 0x100000001b3
1:      lbu     t3, 0(t0)
        xor     a0, a0, t3
        mul     a0, a0, t2
        addi    t0, t0, 1
        addi    t1, t1, -1
        bnez    t1, 1b
        ret

# Bitwise CRC-32 (reflected, poly 0xEDB88320) over HASH_BYTES bytes.
crc32:
        la      t0, sieve_buf
        li      t1, HASH_BYTES
        li      a0, -1
        li      t2, 0xedb88320
1:      lbu     t3, 0(t0)
        xor     a0, a0, t3
        li      t4, 8
2:      andi    t5, a0, 1
        srliw   a0, a0, 1
        beqz    t5, 3f
        xor     a0, a0, t2
3:      addi    t4, t4, -1
        bnez    t4, 2b
        addi    t0, t0, 1
        addi    t1, t1, -1
        bnez    t1, 1b
        not     a0, a0
        slli    a0, a0, 32
        srli    a0, a0, 32
        ret

# Fill SORT_WORDS words from an LCG, insertion-sort them, return a weighted sum.
sort:
        la      t0, sort_buf
        li      t1, SORT_WORDS
        la      t6, lcg_state
        ld      t2, 0(t6)
        li      t3, 6364136223846793005
1:      mul     t2, t2, t3
        addi    t2, t2, 1442695040888963407 & 0x7ff
        srli    t4, t2, 33
        sw      t4, 0(t0)
        addi    t0, t0, 4
        addi    t1, t1, -1
        bnez    t1, 1b
        sd      t2, 0(t6)
        la      t0, sort_buf
        li      t1, 1
        li      a1, SORT_WORDS
2:      slli    t2, t1, 2
        add     t2, t0, t2
        lwu     t3, 0(t2)           # key
        mv      t4, t1
3:      beqz    t4, 4f
        lwu     t5, -4(t2)
        bleu    t5, t3, 4f
        sw      t5, 0(t2)
        addi    t2, t2, -4
        addi    t4, t4, -1
        j       3b
4:      sw      t3, 0(t2)
        addi    t1, t1, 1
        blt     t1, a1, 2b
        li      a0, 0
        li      t1, 0
5:      lwu     t3, 0(t0)
        addi    t1, t1, 1
        mul     t3, t3, t1
        add     a0, a0, t3
        addi    t0, t0, 4
        blt     t1, a1, 5b
        ret

# Link LIST_NODES nodes {next, value} in a scattered order.
build_list:
        la      t0, list_buf
        li      t1, 0
        li      t2, LIST_NODES
1:      li      t3, 97
        mul     t3, t1, t3
        addi    t3, t3, 1
        remu    t3, t3, t2          # next index
        slli    t4, t1, 4
        add     t4, t0, t4
        slli    t5, t3, 4
        add     t5, t0, t5
        sd      t5, 0(t4)
        sd      t1, 8(t4)
        addi    t1, t1, 1
        blt     t1, t2, 1b
        ret

walk_list:
        la      t0, list_buf
        li      t1, LIST_NODES * 4
        li      a0, 0
1:      ld      t2, 8(t0)
        add     a0, a0, t2
        slli    a0, a0, 1
        srli    t3, a0, 63
        or      a0, a0, t3
        ld      t0, 0(t0)
        addi    t1, t1, -1
        bnez    t1, 1b
        ret

# Legacy SBI console putchar: OpenSBI 1.1 (QEMU 7.2's) has no DBCN yet.
putchar:
        li      a7, 1
        ecall
        ret

# Print a0 as 16 hex digits.
print_hex:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        mv      s0, a0
        li      s1, 60
1:      srl     a0, s0, s1
        andi    a0, a0, 15
        li      t0, 10
        blt     a0, t0, 2f
        addi    a0, a0, 'a' - 10 - '0'
2:      addi    a0, a0, '0'
        call    putchar
        addi    s1, s1, -4
        bgez    s1, 1b
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

        .data
        .balign 8
rounds: .dword  0
lcg_state:
        .dword  0x853c49e6748fea9b
result: .dword  0

        .bss
        .balign 16
sieve_buf:
        .space  SIEVE_SIZE
sort_buf:
        .space  SORT_WORDS * 4
        .balign 16
list_buf:
        .space  LIST_NODES * 16
        .balign 16
        .space  4096
stack_top:
