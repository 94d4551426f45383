# String and memory routines as a C library writes them: memcpy and memset
# with an aligned doubleword fast path, memmove for overlapping buffers,
# memcmp and a word-at-a-time strlen, run with every source and destination
# misalignment over many lengths. Each result buffer is hashed (guard bytes
# included) and checked against a byte-at-a-time reference. Also the
# sign/zero extension of every load width and sub-word stores.

        .equ    BUF, 256
        .equ    LEN_COUNT, 17

        .text
main:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        call    fill_source
        call    test_memcpy
        call    test_memset
        call    test_memmove
        call    test_strlen
        call    test_memcmp
        call    test_loads
        call    test_stores
        li      a0, 0
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# source[i] = (i * 37 + 11) ^ (i >> 3), never 0 so it can hold strings too
fill_source:
        la      t0, source
        li      t1, 0
1:      li      t2, 37
        mul     t2, t1, t2
        addi    t2, t2, 11
        srli    t3, t1, 3
        xor     t2, t2, t3
        andi    t2, t2, 0xff
        bnez    t2, 2f
        li      t2, 0x5a
2:      add     t3, t0, t1
        sb      t2, 0(t3)
        addi    t1, t1, 1
        li      t2, BUF
        blt     t1, t2, 1b
        ret

# hash_buffer(a0 = address, 8-aligned; a1 = bytes, a multiple of 8) -> a0
hash_buffer:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        mv      s0, a0
        add     s1, a0, a1
        call    hash_init
        mv      s2, a0
1:      bgeu    s0, s1, 2f
        ld      a1, 0(s0)
        mv      a0, s2
        call    mix
        mv      s2, a0
        addi    s0, s0, 8
        j       1b
2:      mv      a0, s2
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        addi    sp, sp, 32
        ret

# memcpy(a0 = dst, a1 = src, a2 = n) -> dst
memcpy:
        mv      t6, a0
        xor     t0, a0, a1
        andi    t0, t0, 7
        bnez    t0, 3f                  # different alignment: bytes only
        li      t1, 8
        bltu    a2, t1, 3f
1:      andi    t0, a0, 7               # copy bytes up to an 8-byte boundary
        beqz    t0, 2f
        lbu     t2, 0(a1)
        sb      t2, 0(a0)
        addi    a0, a0, 1
        addi    a1, a1, 1
        addi    a2, a2, -1
        j       1b
2:      bltu    a2, t1, 3f              # doublewords
        ld      t2, 0(a1)
        sd      t2, 0(a0)
        addi    a0, a0, 8
        addi    a1, a1, 8
        addi    a2, a2, -8
        j       2b
3:      beqz    a2, 4f                  # the tail, or everything, by bytes
        lbu     t2, 0(a1)
        sb      t2, 0(a0)
        addi    a0, a0, 1
        addi    a1, a1, 1
        addi    a2, a2, -1
        j       3b
4:      mv      a0, t6
        ret

# memset(a0 = dst, a1 = byte, a2 = n) -> dst
memset:
        mv      t6, a0
        andi    a1, a1, 0xff
        li      t0, 0x0101010101010101
        mul     t3, a1, t0              # the byte in all 8 lanes
        li      t1, 8
        bltu    a2, t1, 3f
1:      andi    t0, a0, 7
        beqz    t0, 2f
        sb      a1, 0(a0)
        addi    a0, a0, 1
        addi    a2, a2, -1
        j       1b
2:      bltu    a2, t1, 3f
        sd      t3, 0(a0)
        addi    a0, a0, 8
        addi    a2, a2, -8
        j       2b
3:      beqz    a2, 4f
        sb      a1, 0(a0)
        addi    a0, a0, 1
        addi    a2, a2, -1
        j       3b
4:      mv      a0, t6
        ret

# memmove(a0 = dst, a1 = src, a2 = n) -> dst, for overlapping buffers
memmove:
        bleu    a0, a1, memcpy_forward_bytes
        add     t0, a1, a2
        bgeu    a0, t0, memcpy
        mv      t6, a0
        add     a0, a0, a2              # copy backwards from the end
        add     a1, a1, a2
1:      beqz    a2, 2f
        addi    a0, a0, -1
        addi    a1, a1, -1
        lbu     t2, 0(a1)
        sb      t2, 0(a0)
        addi    a2, a2, -1
        j       1b
2:      mv      a0, t6
        ret

memcpy_forward_bytes:
        mv      t6, a0
1:      beqz    a2, 2f
        lbu     t2, 0(a1)
        sb      t2, 0(a0)
        addi    a0, a0, 1
        addi    a1, a1, 1
        addi    a2, a2, -1
        j       1b
2:      mv      a0, t6
        ret

# strlen(a0 = string) -> length; reads whole aligned doublewords
strlen:
        mv      t0, a0
1:      andi    t1, t0, 7
        beqz    t1, 2f
        lbu     t2, 0(t0)
        beqz    t2, 5f
        addi    t0, t0, 1
        j       1b
2:      li      t3, 0x0101010101010101
        slli    t4, t3, 7               # 0x8080808080808080
3:      ld      t2, 0(t0)
        sub     t5, t2, t3
        not     t6, t2
        and     t5, t5, t6
        and     t5, t5, t4
        bnez    t5, 4f                  # some byte is zero
        addi    t0, t0, 8
        j       3b
4:      lbu     t2, 0(t0)
        beqz    t2, 5f
        addi    t0, t0, 1
        j       4b
5:      sub     a0, t0, a0
        ret

# strlen_bytes(a0) -> length, the reference
strlen_bytes:
        mv      t0, a0
1:      lbu     t1, 0(t0)
        beqz    t1, 2f
        addi    t0, t0, 1
        j       1b
2:      sub     a0, t0, a0
        ret

# memcmp(a0, a1, a2 = n) -> <0, 0, >0 (difference of the first differing bytes)
memcmp:
1:      beqz    a2, 2f
        lbu     t0, 0(a0)
        lbu     t1, 0(a1)
        bne     t0, t1, 3f
        addi    a0, a0, 1
        addi    a1, a1, 1
        addi    a2, a2, -1
        j       1b
2:      li      a0, 0
        ret
3:      sub     a0, t0, t1
        ret

# For every (src offset, dst offset, length): clear dst to 0xee, memcpy,
# hash dst whole; check dst against a bytewise copy of the same bytes.
test_memcpy:
        addi    sp, sp, -64
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        sd      s4, 40(sp)
        call    hash_init
        mv      s3, a0
        li      s0, 0                   # source offset
1:      li      s1, 0                   # destination offset
2:      li      s2, 0                   # length index
3:      la      a0, dest
        li      a1, 0xee
        li      a2, BUF
        call    memset_bytes
        la      a0, dest
        add     a0, a0, s1
        la      a1, source
        add     a1, a1, s0
        la      t0, lengths
        slli    t1, s2, 3
        add     t0, t0, t1
        ld      a2, 0(t0)
        mv      s4, a2
        call    memcpy
        la      t0, dest                # memcpy returns dst
        add     t0, t0, s1
        la      a2, n_memcpy_ret
        mv      a1, t0
        call    check
        la      a0, dest                # compare with the source bytes
        add     a0, a0, s1
        la      a1, source
        add     a1, a1, s0
        mv      a2, s4
        call    memcmp
        li      a1, 0
        la      a2, n_memcpy_cmp
        call    check
        la      a0, dest
        add     a0, a0, s1              # guard byte after the copy untouched
        add     a0, a0, s4
        lbu     a0, 0(a0)
        li      a1, 0xee
        la      a2, n_memcpy_guard
        call    check
        la      a0, dest
        li      a1, 128
        call    hash_buffer
        mv      a1, a0
        mv      a0, s3
        call    mix
        mv      s3, a0
        addi    s2, s2, 1
        li      t0, LEN_COUNT
        blt     s2, t0, 3b
        addi    s1, s1, 1
        li      t0, 8
        blt     s1, t0, 2b
        addi    s0, s0, 1
        blt     s0, t0, 1b
        la      a0, n_memcpy
        mv      a1, s3
        call    print_kv
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        ld      s4, 40(sp)
        addi    sp, sp, 64
        ret

memset_bytes:
        add     t0, a0, a2
1:      bgeu    a0, t0, 2f
        sb      a1, 0(a0)
        addi    a0, a0, 1
        j       1b
2:      ret

# For every (offset, length, value): memset then hash; check against bytes.
test_memset:
        addi    sp, sp, -48
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        call    hash_init
        mv      s3, a0
        li      s0, 0                   # offset
1:      li      s1, 0                   # length index
2:      la      a0, dest
        li      a1, 0x11
        li      a2, BUF
        call    memset_bytes
        la      a0, dest
        add     a0, a0, s0
        addi    a1, s1, 0x7f            # crosses into negative bytes
        la      t0, lengths
        slli    t1, s1, 3
        add     t0, t0, t1
        ld      a2, 0(t0)
        mv      s2, a2
        call    memset
        la      a0, dest
        add     a0, a0, s0
        add     a0, a0, s2
        lbu     a0, 0(a0)
        li      a1, 0x11
        la      a2, n_memset_guard
        call    check
        la      a0, dest
        li      a1, 128
        call    hash_buffer
        mv      a1, a0
        mv      a0, s3
        call    mix
        mv      s3, a0
        addi    s1, s1, 1
        li      t0, LEN_COUNT
        blt     s1, t0, 2b
        addi    s0, s0, 1
        li      t0, 8
        blt     s0, t0, 1b
        la      a0, n_memset
        mv      a1, s3
        call    print_kv
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        addi    sp, sp, 48
        ret

# Overlapping moves in both directions by distances -9..9.
test_memmove:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        call    hash_init
        mv      s1, a0
        li      s0, -9
1:      la      a0, dest                # dest = source
        la      a1, source
        li      a2, BUF
        call    memcpy
        la      a1, dest                # move 40 bytes at dest+32 by s0
        addi    a1, a1, 32
        add     a0, a1, s0
        li      a2, 40
        call    memmove
        la      a0, dest
        li      a1, 128
        call    hash_buffer
        mv      a1, a0
        mv      a0, s1
        call    mix
        mv      s1, a0
        addi    s0, s0, 1
        li      t0, 10
        blt     s0, t0, 1b
        la      a0, n_memmove
        mv      a1, s1
        call    print_kv
        # a known case: "abcdefgh" moved right by 3 within itself
        la      a0, move_text
        addi    a0, a0, 3
        la      a1, move_text
        li      a2, 5
        call    memmove
        la      a0, move_text
        call    puts
        call    newline
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

# Strings of length 0..39 at offsets 0..7: word-at-a-time vs bytewise.
test_strlen:
        addi    sp, sp, -48
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        li      s3, 0                   # sum of lengths
        li      s0, 0                   # offset
1:      li      s1, 0                   # length
2:      la      a0, dest
        la      a1, source
        li      a2, BUF
        call    memcpy
        la      t0, dest
        add     t0, t0, s0
        add     t0, t0, s1
        sb      zero, 0(t0)
        la      a0, dest
        add     a0, a0, s0
        call    strlen
        mv      s2, a0
        add     s3, s3, a0
        mv      a1, s1
        la      a2, n_strlen
        call    check
        la      a0, dest
        add     a0, a0, s0
        call    strlen_bytes
        mv      a1, s2
        la      a2, n_strlen_bytes
        call    check
        addi    s1, s1, 1
        li      t0, 40
        blt     s1, t0, 2b
        addi    s0, s0, 1
        li      t0, 8
        blt     s0, t0, 1b
        la      a0, n_strlen_sum
        mv      a1, s3
        call    print_kd
        la      a0, greeting
        call    strlen
        mv      a1, a0
        la      a0, n_strlen_greeting
        call    print_kd
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        addi    sp, sp, 48
        ret

test_memcmp:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        la      a0, cmp_a
        la      a1, cmp_b
        li      a2, 4
        call    memcmp
        mv      a1, a0
        la      a0, n_memcmp4
        call    print_kd
        la      a0, cmp_a
        la      a1, cmp_b
        li      a2, 8
        call    memcmp
        mv      a1, a0
        la      a0, n_memcmp8
        call    print_kd
        la      a0, cmp_b
        la      a1, cmp_a
        li      a2, 8
        call    memcmp
        mv      a1, a0
        la      a0, n_memcmp8r
        call    print_kd
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# Every load width at every aligned offset of a pattern with high bits set.
test_loads:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        call    hash_init
        mv      s1, a0
        li      s0, 0
1:      la      t0, pattern
        add     t0, t0, s0
        lb      a1, 0(t0)
        mv      a0, s1
        call    mix
        mv      s1, a0
        la      t0, pattern
        add     t0, t0, s0
        lbu     a1, 0(t0)
        mv      a0, s1
        call    mix
        mv      s1, a0
        andi    t1, s0, 1
        bnez    t1, 2f
        la      t0, pattern
        add     t0, t0, s0
        lh      a1, 0(t0)
        mv      a0, s1
        call    mix
        mv      s1, a0
        la      t0, pattern
        add     t0, t0, s0
        lhu     a1, 0(t0)
        mv      a0, s1
        call    mix
        mv      s1, a0
        andi    t1, s0, 3
        bnez    t1, 2f
        la      t0, pattern
        add     t0, t0, s0
        lw      a1, 0(t0)
        mv      a0, s1
        call    mix
        mv      s1, a0
        la      t0, pattern
        add     t0, t0, s0
        lwu     a1, 0(t0)
        mv      a0, s1
        call    mix
        mv      s1, a0
        andi    t1, s0, 7
        bnez    t1, 2f
        la      t0, pattern
        add     t0, t0, s0
        ld      a1, 0(t0)
        mv      a0, s1
        call    mix
        mv      s1, a0
2:      addi    s0, s0, 1
        li      t0, 32
        blt     s0, t0, 1b
        la      a0, n_loads
        mv      a1, s1
        call    print_kv
        # exact extensions
        la      t0, pattern
        lb      a1, 0(t0)
        la      a0, n_lb
        call    print_kv
        la      t0, pattern
        lhu     a1, 2(t0)
        la      a0, n_lhu
        call    print_kv
        la      t0, pattern
        lw      a1, 4(t0)
        la      a0, n_lw
        call    print_kv
        la      t0, pattern
        lwu     a1, 4(t0)
        la      a0, n_lwu
        call    print_kv
        la      t0, pattern         # negative offsets
        addi    t0, t0, 16
        ld      a1, -8(t0)
        la      a0, n_ld_neg
        call    print_kv
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

# Sub-word stores only change their bytes.
test_stores:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        la      t0, dest
        li      t1, -1
        sd      t1, 0(t0)
        sd      t1, 8(t0)
        li      t1, 0x1122334455667788
        sb      t1, 1(t0)
        sh      t1, 2(t0)
        sw      t1, 4(t0)
        sh      t1, 8(t0)
        sb      t1, 15(t0)
        sw      zero, 12(t0)
        sb      t1, 13(t0)
        ld      a1, 0(t0)
        la      a0, n_store0
        call    print_kv
        la      t0, dest
        ld      a1, 8(t0)
        la      a0, n_store8
        call    print_kv
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

        .section .rodata
program_name:
        .asciz  "memory"
n_memcpy:       .asciz "memcpy"
n_memcpy_ret:   .asciz "memcpy returns dst"
n_memcpy_cmp:   .asciz "memcpy copies"
n_memcpy_guard: .asciz "memcpy guard byte"
n_memset:       .asciz "memset"
n_memset_guard: .asciz "memset guard byte"
n_memmove:      .asciz "memmove"
n_strlen:       .asciz "strlen"
n_strlen_bytes: .asciz "strlen bytewise"
n_strlen_sum:   .asciz "strlen sum"
n_strlen_greeting: .asciz "strlen greeting"
n_memcmp4:      .asciz "memcmp 4"
n_memcmp8:      .asciz "memcmp 8"
n_memcmp8r:     .asciz "memcmp 8 reversed"
n_loads:        .asciz "loads"
n_lb:           .asciz "lb"
n_lhu:          .asciz "lhu"
n_lw:           .asciz "lw"
n_lwu:          .asciz "lwu"
n_ld_neg:       .asciz "ld -8"
n_store0:       .asciz "stores 0"
n_store8:       .asciz "stores 8"
greeting:       .asciz "Hello from a guest that counts its own bytes!"
cmp_a:          .ascii "abcdXfgh"
cmp_b:          .ascii "abcdAfgh"
        .align  3
lengths:
        .dword  0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 23, 24, 31, 33, 63, 64
pattern:
        .dword  0x8081f2f3c4c5e6e7, 0x7f017e02fd03fc04
        .dword  0xfedcba9876543210, 0x0123456789abcdef

        .data
move_text:
        .asciz  "abcdefgh"

        .bss
        .align  3
source: .space  BUF
dest:   .space  BUF
