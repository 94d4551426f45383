# Recursion on the stack: naive Fibonacci, Ackermann, Takeuchi, the towers
# of Hanoi, mutual recursion, a deep linear recursion, all permutations by
# Heap's algorithm and the eight queens. Results are printed in decimal and
# checked against known values.

        .text
main:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        # fib(0..24), then fib(25) checked
        li      s0, 0
1:      mv      a0, s0
        call    fib
        call    print_udec
        call    space
        addi    s0, s0, 1
        li      t0, 25
        blt     s0, t0, 1b
        call    newline
        li      a0, 25
        call    fib
        mv      a1, a0
        la      a0, n_fib25
        call    print_kd
        li      a0, 25
        call    fib
        li      a1, 75025
        la      a2, n_fib25
        call    check

        # Ackermann A(m, n) for m <= 3, n <= 4
        li      s0, 0
2:      srli    a0, s0, 3               # m = s0 / 8, n = s0 % 8 (n < 5)
        andi    a1, s0, 7
        li      t0, 5
        bge     a1, t0, 3f
        call    ackermann
        call    print_udec
        call    space
3:      addi    s0, s0, 1
        li      t0, 32
        blt     s0, t0, 2b
        call    newline
        li      a0, 3
        li      a1, 4
        call    ackermann
        li      a1, 125
        la      a2, n_ack34
        call    check
        li      a0, 2
        li      a1, 3
        call    ackermann
        li      a1, 9
        la      a2, n_ack23
        call    check

        # Takeuchi
        li      a0, 18
        li      a1, 12
        li      a2, 6
        call    tak
        mv      a1, a0
        la      a0, n_tak
        call    print_kd
        li      a0, 18
        li      a1, 12
        li      a2, 6
        call    tak
        li      a1, 7
        la      a2, n_tak
        call    check

        # Hanoi: 14 discs, hash of the moves, count
        call    hash_init
        la      t0, hanoi_hash
        sd      a0, 0(t0)
        la      t0, hanoi_moves
        sd      zero, 0(t0)
        li      a0, 14
        li      a1, 1
        li      a2, 3
        li      a3, 2
        call    hanoi
        la      a0, n_hanoi_moves
        la      t0, hanoi_moves
        ld      a1, 0(t0)
        call    print_kd
        la      a0, n_hanoi_hash
        la      t0, hanoi_hash
        ld      a1, 0(t0)
        call    print_kv
        la      t0, hanoi_moves
        ld      a0, 0(t0)
        li      a1, 16383
        la      a2, n_hanoi_moves
        call    check

        # mutual recursion
        li      a0, 777
        call    is_even
        mv      a1, a0
        la      a0, n_even777
        call    print_kd
        li      a0, 1000
        call    is_even
        li      a1, 1
        la      a2, n_even1000
        call    check

        # deep linear recursion: sum of 1..5000, 5000 frames deep
        li      a0, 5000
        call    sum_to
        mv      a1, a0
        la      a0, n_sum
        call    print_kd
        li      a0, 5000
        call    sum_to
        li      a1, 12502500
        la      a2, n_sum
        call    check

        # Heap's algorithm over 7 elements
        call    hash_init
        la      t0, perm_hash
        sd      a0, 0(t0)
        la      t0, perm_count
        sd      zero, 0(t0)
        li      a0, 7
        call    permute
        la      a0, n_perms
        la      t0, perm_count
        ld      a1, 0(t0)
        call    print_kd
        la      a0, n_perm_hash
        la      t0, perm_hash
        ld      a1, 0(t0)
        call    print_kv
        la      t0, perm_count
        ld      a0, 0(t0)
        li      a1, 5040
        la      a2, n_perms
        call    check
        la      a0, perm
        call    puts
        call    newline

        # eight queens
        li      a0, 0
        li      a1, 0
        li      a2, 0
        li      a3, 0
        call    queens
        mv      s0, a0
        mv      a1, a0
        la      a0, n_queens
        call    print_kd
        mv      a0, s0
        li      a1, 92
        la      a2, n_queens
        call    check

        li      a0, 0
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        addi    sp, sp, 32
        ret

# fib(a0 = n) -> fib(n), naively
fib:
        li      t0, 2
        bltu    a0, t0, 1f
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        mv      s0, a0
        addi    a0, a0, -1
        call    fib
        mv      s1, a0
        addi    a0, s0, -2
        call    fib
        add     a0, a0, s1
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
1:      ret

# ackermann(a0 = m, a1 = n)
ackermann:
        bnez    a0, 1f
        addi    a0, a1, 1
        ret
1:      addi    sp, sp, -16
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        mv      s0, a0
        bnez    a1, 2f
        addi    a0, a0, -1              # A(m-1, 1)
        li      a1, 1
        call    ackermann
        j       3f
2:      addi    a1, a1, -1              # A(m-1, A(m, n-1))
        call    ackermann
        mv      a1, a0
        addi    a0, s0, -1
        call    ackermann
3:      ld      ra, 0(sp)
        ld      s0, 8(sp)
        addi    sp, sp, 16
        ret

# tak(x, y, z) = y < x ? tak(tak(x-1,y,z), tak(y-1,z,x), tak(z-1,x,y)) : z
tak:
        blt     a1, a0, 1f
        mv      a0, a2
        ret
1:      addi    sp, sp, -48
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        sd      s4, 40(sp)
        mv      s0, a0
        mv      s1, a1
        mv      s2, a2
        addi    a0, s0, -1
        call    tak
        mv      s3, a0
        addi    a0, s1, -1
        mv      a1, s2
        mv      a2, s0
        call    tak
        mv      s4, a0
        addi    a0, s2, -1
        mv      a1, s0
        mv      a2, s1
        call    tak
        mv      a2, a0
        mv      a0, s3
        mv      a1, s4
        call    tak
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        ld      s4, 40(sp)
        addi    sp, sp, 48
        ret

# hanoi(a0 = n, a1 = from, a2 = to, a3 = via): records every move
hanoi:
        beqz    a0, 1f
        addi    sp, sp, -48
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        mv      s0, a0
        mv      s1, a1
        mv      s2, a2
        mv      s3, a3
        addi    a0, s0, -1              # n-1 discs from -> via
        mv      a2, s3
        mv      a3, s2
        call    hanoi
        la      t1, hanoi_hash          # move disc n from -> to
        ld      a0, 0(t1)
        slli    a1, s0, 8
        slli    t2, s1, 4
        or      a1, a1, t2
        or      a1, a1, s2
        call    mix
        la      t1, hanoi_hash
        sd      a0, 0(t1)
        la      t1, hanoi_moves
        ld      t2, 0(t1)
        addi    t2, t2, 1
        sd      t2, 0(t1)
        addi    a0, s0, -1              # n-1 discs via -> to
        mv      a1, s3
        mv      a2, s2
        mv      a3, s1
        call    hanoi
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        addi    sp, sp, 48
1:      ret

is_even:
        bnez    a0, 1f
        li      a0, 1
        ret
1:      addi    sp, sp, -16
        sd      ra, 0(sp)
        addi    a0, a0, -1
        call    is_odd
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

is_odd:
        bnez    a0, 1f
        li      a0, 0
        ret
1:      addi    sp, sp, -16
        sd      ra, 0(sp)
        addi    a0, a0, -1
        call    is_even
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# sum_to(n) = n + sum_to(n - 1), not a tail call
sum_to:
        beqz    a0, 1f
        addi    sp, sp, -16
        sd      ra, 0(sp)
        sd      a0, 8(sp)
        addi    a0, a0, -1
        call    sum_to
        ld      t0, 8(sp)
        add     a0, a0, t0
        ld      ra, 0(sp)
        addi    sp, sp, 16
1:      ret

# permute(a0 = k): Heap's algorithm on perm[0..k); hashes each permutation
permute:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        mv      s0, a0
        li      t0, 1
        bne     s0, t0, 2f
        la      t0, perm                # output: mix the 7 bytes as one value
        ld      a1, 0(t0)
        la      t1, perm_hash
        ld      a0, 0(t1)
        call    mix
        la      t1, perm_hash
        sd      a0, 0(t1)
        la      t1, perm_count
        ld      t2, 0(t1)
        addi    t2, t2, 1
        sd      t2, 0(t1)
        j       9f
2:      li      s1, 0
3:      addi    a0, s0, -1
        call    permute
        addi    t0, s0, -1
        bge     s1, t0, 5f
        # swap perm[k-1] with perm[k even ? i : 0]
        andi    t1, s0, 1
        li      t2, 0
        bnez    t1, 4f
        mv      t2, s1
4:      la      t3, perm
        add     t4, t3, t2
        add     t5, t3, t0
        lbu     t6, 0(t4)
        lbu     a1, 0(t5)
        sb      a1, 0(t4)
        sb      t6, 0(t5)
        addi    s1, s1, 1
        j       3b
5:
9:      ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

# queens(a0 = row, a1 = columns used, a2 = diagonals, a3 = anti-diagonals)
# -> number of ways to complete an 8x8 board
queens:
        li      t0, 8
        bne     a0, t0, 1f
        li      a0, 1
        ret
1:      addi    sp, sp, -64
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        sd      s4, 40(sp)
        sd      s5, 48(sp)
        mv      s0, a0
        mv      s1, a1
        mv      s2, a2
        mv      s3, a3
        li      s4, 0                   # column
        li      s5, 0                   # solutions
2:      li      t0, 1
        sll     t0, t0, s4
        and     t1, s1, t0
        bnez    t1, 3f
        add     t2, s0, s4              # diagonal row + col
        li      t3, 1
        sll     t3, t3, t2
        and     t1, s2, t3
        bnez    t1, 3f
        sub     t2, s0, s4              # anti-diagonal row - col + 7
        addi    t2, t2, 7
        li      t4, 1
        sll     t4, t4, t2
        and     t1, s3, t4
        bnez    t1, 3f
        addi    a0, s0, 1
        or      a1, s1, t0
        or      a2, s2, t3
        or      a3, s3, t4
        call    queens
        add     s5, s5, a0
3:      addi    s4, s4, 1
        li      t0, 8
        blt     s4, t0, 2b
        mv      a0, s5
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        ld      s4, 40(sp)
        ld      s5, 48(sp)
        addi    sp, sp, 64
        ret

        .section .rodata
program_name:
        .asciz  "recursion"
n_fib25:        .asciz "fib(25)"
n_ack34:        .asciz "ackermann(3,4)"
n_ack23:        .asciz "ackermann(2,3)"
n_tak:          .asciz "tak(18,12,6)"
n_hanoi_moves:  .asciz "hanoi(14) moves"
n_hanoi_hash:   .asciz "hanoi(14) hash"
n_even777:      .asciz "is_even(777)"
n_even1000:     .asciz "is_even(1000)"
n_sum:          .asciz "sum_to(5000)"
n_perms:        .asciz "permutations(7)"
n_perm_hash:    .asciz "permutations hash"
n_queens:       .asciz "queens(8)"

        .data
        .align  3
perm:   .asciz  "ABCDEFG"
        .align  3
hanoi_hash:  .dword 0
hanoi_moves: .dword 0
perm_hash:   .dword 0
perm_count:  .dword 0
