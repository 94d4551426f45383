# Sorting: a xorshift64 generator fills arrays, then a recursive quicksort
# (signed doublewords), a heapsort (unsigned doublewords) and an insertion
# sort (signed words, lw/sw) sort them. Each result is checked to be in
# order and to be a permutation of the input (sum and xor kept), hashed and
# sampled; binary search then looks up keys in the quicksorted array.

        .equ    N, 3000
        .equ    NW, 400

        .text
main:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)

        # --- quicksort of N signed doublewords ---
        li      a0, 0x9e3779b97f4a7c15
        la      a1, array
        li      a2, N
        call    fill_random
        la      a0, array
        li      a1, N
        call    sum_xor
        mv      s0, a0
        mv      s1, a1
        la      a0, array
        la      a1, array
        li      t0, (N - 1) * 8
        add     a1, a1, t0
        call    quicksort
        la      a0, array
        li      a1, N
        call    sum_xor
        mv      s2, a1
        mv      a1, s0
        la      a2, n_qs_sum
        call    check
        mv      a0, s2
        mv      a1, s1
        la      a2, n_qs_xor
        call    check
        la      a0, array
        li      a1, N
        li      a2, 1                   # signed
        call    count_inversions
        li      a1, 0
        la      a2, n_qs_order
        call    check
        la      a0, n_quicksort
        la      a1, array
        li      a2, N
        call    report

        # binary search for every 97th element and for missing keys
        call    hash_init
        mv      s0, a0
        li      s1, 0
1:      la      t0, array
        slli    t1, s1, 3
        add     t0, t0, t1
        ld      a0, 0(t0)
        call    bsearch                 # -> index of the first element >= key
        mv      a1, a0
        mv      a0, s0
        call    mix
        mv      s0, a0
        la      t0, array               # key + 1 (mostly missing)
        slli    t1, s1, 3
        add     t0, t0, t1
        ld      a0, 0(t0)
        addi    a0, a0, 1
        call    bsearch
        mv      a1, a0
        mv      a0, s0
        call    mix
        mv      s0, a0
        addi    s1, s1, 97
        li      t0, N
        blt     s1, t0, 1b
        li      a0, 0x8000000000000000  # smaller than everything
        call    bsearch
        mv      a1, a0
        mv      a0, s0
        call    mix
        mv      a1, a0
        la      a0, n_bsearch
        call    print_kv

        # --- heapsort of N unsigned doublewords ---
        li      a0, 12345
        la      a1, array
        li      a2, N
        call    fill_random
        la      a0, array
        li      a1, N
        call    sum_xor
        mv      s0, a0
        mv      s1, a1
        la      a0, array
        li      a1, N
        call    heapsort
        la      a0, array
        li      a1, N
        call    sum_xor
        mv      s2, a1
        mv      a1, s0
        la      a2, n_hs_sum
        call    check
        mv      a0, s2
        mv      a1, s1
        la      a2, n_hs_xor
        call    check
        la      a0, array
        li      a1, N
        li      a2, 0                   # unsigned
        call    count_inversions
        li      a1, 0
        la      a2, n_hs_order
        call    check
        la      a0, n_heapsort
        la      a1, array
        li      a2, N
        call    report

        # --- insertion sort of NW signed words ---
        li      a0, 777
        la      a1, array
        li      a2, NW / 2              # NW words = NW/2 doublewords
        call    fill_random
        la      a0, words
        li      a1, NW
        call    insertion_sort_words
        li      s0, 1                   # check order with signed word compares
        li      s1, 0
2:      la      t0, words
        slli    t1, s0, 2
        add     t0, t0, t1
        lw      t2, -4(t0)
        lw      t3, 0(t0)
        ble     t2, t3, 3f
        addi    s1, s1, 1
3:      addi    s0, s0, 1
        li      t0, NW
        blt     s0, t0, 2b
        mv      a0, s1
        li      a1, 0
        la      a2, n_is_order
        call    check
        call    hash_init
        mv      s0, a0
        li      s1, 0
4:      la      t0, words
        slli    t1, s1, 2
        add     t0, t0, t1
        lw      a1, 0(t0)
        mv      a0, s0
        call    mix
        mv      s0, a0
        addi    s1, s1, 1
        li      t0, NW
        blt     s1, t0, 4b
        la      a0, n_insertion
        mv      a1, s0
        call    print_kv
        la      t0, words
        lw      a1, 0(t0)
        la      a0, n_is_min
        call    print_kd
        la      t0, words
        lw      a1, (NW - 1) * 4(t0)
        la      a0, n_is_max
        call    print_kd

        li      a0, 0
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        addi    sp, sp, 32
        ret

# fill_random(a0 = seed, a1 = array, a2 = count): xorshift64
fill_random:
1:      beqz    a2, 2f
        slli    t0, a0, 13
        xor     a0, a0, t0
        srli    t0, a0, 7
        xor     a0, a0, t0
        slli    t0, a0, 17
        xor     a0, a0, t0
        sd      a0, 0(a1)
        addi    a1, a1, 8
        addi    a2, a2, -1
        j       1b
2:      ret

# sum_xor(a0 = array, a1 = count) -> a0 = sum, a1 = xor
sum_xor:
        li      t0, 0
        li      t1, 0
1:      beqz    a1, 2f
        ld      t2, 0(a0)
        add     t0, t0, t2
        xor     t1, t1, t2
        addi    a0, a0, 8
        addi    a1, a1, -1
        j       1b
2:      mv      a0, t0
        mv      a1, t1
        ret

# count_inversions(a0 = array, a1 = count, a2 = signed?) -> adjacent pairs out of order
count_inversions:
        li      t0, 0
        addi    a1, a1, -1
1:      blez    a1, 4f
        ld      t1, 0(a0)
        ld      t2, 8(a0)
        beqz    a2, 2f
        slt     t3, t2, t1
        j       3f
2:      sltu    t3, t2, t1
3:      add     t0, t0, t3
        addi    a0, a0, 8
        addi    a1, a1, -1
        j       1b
4:      mv      a0, t0
        ret

# report(a0 = name, a1 = array, a2 = count): "name=hash" and three samples
report:
        addi    sp, sp, -48
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        mv      s0, a0
        mv      s1, a1
        mv      s2, a2
        call    hash_init
        mv      s3, a0
        li      t3, 0
1:      slli    t1, t3, 3
        add     t1, s1, t1
        ld      a1, 0(t1)
        mv      a0, s3
        call    mix
        mv      s3, a0
        addi    t3, t3, 1
        blt     t3, s2, 1b
        mv      a0, s0
        mv      a1, s3
        call    print_kv
        ld      a0, 0(s1)               # first, middle, last
        call    print_hex
        call    space
        srli    t0, s2, 1
        slli    t0, t0, 3
        add     t0, s1, t0
        ld      a0, 0(t0)
        call    print_hex
        call    space
        addi    t0, s2, -1
        slli    t0, t0, 3
        add     t0, s1, t0
        ld      a0, 0(t0)
        call    print_hex
        call    newline
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        addi    sp, sp, 48
        ret

# quicksort(a0 = first element, a1 = last element), signed, Lomuto partition
# around the middle element, recursing into the smaller part first.
quicksort:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        mv      s0, a0
        mv      s1, a1
1:      bgeu    s0, s1, 9f
        sub     t0, s1, s0              # move the middle element to the end
        srli    t0, t0, 4
        slli    t0, t0, 3
        add     t0, s0, t0
        ld      t1, 0(t0)
        ld      t2, 0(s1)
        sd      t2, 0(t0)
        sd      t1, 0(s1)               # pivot t1 at the end
        mv      t3, s0                  # store index
        mv      t4, s0
2:      bgeu    t4, s1, 4f
        ld      t5, 0(t4)
        bge     t5, t1, 3f
        ld      t6, 0(t3)
        sd      t5, 0(t3)
        sd      t6, 0(t4)
        addi    t3, t3, 8
3:      addi    t4, t4, 8
        j       2b
4:      ld      t5, 0(t3)               # pivot into place
        sd      t1, 0(t3)
        sd      t5, 0(s1)
        mv      s2, t3
        sub     t0, s2, s0
        sub     t1, s1, s2
        bgeu    t0, t1, 5f
        mv      a0, s0                  # left part smaller: recurse on it
        addi    a1, s2, -8
        call    quicksort
        addi    s0, s2, 8
        j       1b
5:      addi    a0, s2, 8
        mv      a1, s1
        call    quicksort
        addi    s1, s2, -8
        j       1b
9:      ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        addi    sp, sp, 32
        ret

# bsearch(a0 = key) -> index of the first element of `array` >= key (signed)
bsearch:
        li      t0, 0                   # lo
        li      t1, N                   # hi
        la      t2, array
1:      bgeu    t0, t1, 3f
        add     t3, t0, t1
        srli    t3, t3, 1
        slli    t4, t3, 3
        add     t4, t2, t4
        ld      t4, 0(t4)
        bge     t4, a0, 2f
        addi    t0, t3, 1
        j       1b
2:      mv      t1, t3
        j       1b
3:      mv      a0, t0
        ret

# heapsort(a0 = array, a1 = count), unsigned
heapsort:
        addi    sp, sp, -48
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        mv      s0, a0
        mv      s1, a1
        srli    s2, s1, 1               # heapify: sift down n/2-1 .. 0
1:      beqz    s2, 2f
        addi    s2, s2, -1
        mv      a0, s0
        mv      a1, s2
        mv      a2, s1
        call    sift_down
        j       1b
2:      addi    s1, s1, -1              # pop the max to the end
        blez    s1, 3f
        ld      t0, 0(s0)
        slli    t1, s1, 3
        add     t1, s0, t1
        ld      t2, 0(t1)
        sd      t2, 0(s0)
        sd      t0, 0(t1)
        mv      a0, s0
        li      a1, 0
        mv      a2, s1
        call    sift_down
        j       2b
3:      ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        addi    sp, sp, 48
        ret

# sift_down(a0 = array, a1 = root, a2 = count)
sift_down:
1:      slli    t0, a1, 1
        addi    t0, t0, 1               # left child
        bgeu    t0, a2, 9f
        slli    t1, t0, 3
        add     t1, a0, t1
        ld      t2, 0(t1)               # child value
        addi    t3, t0, 1
        bgeu    t3, a2, 2f
        ld      t4, 8(t1)
        bleu    t4, t2, 2f
        mv      t0, t3
        mv      t2, t4
2:      slli    t5, a1, 3
        add     t5, a0, t5
        ld      t6, 0(t5)
        bgeu    t6, t2, 9f
        sd      t2, 0(t5)
        slli    t1, t0, 3
        add     t1, a0, t1
        sd      t6, 0(t1)
        mv      a1, t0
        j       1b
9:      ret

# insertion_sort_words(a0 = words, a1 = count): signed 32-bit
insertion_sort_words:
        li      t0, 1
1:      bge     t0, a1, 9f
        slli    t1, t0, 2
        add     t1, a0, t1
        lw      t2, 0(t1)               # key
        mv      t3, t1
2:      beq     t3, a0, 3f
        lw      t4, -4(t3)
        ble     t4, t2, 3f
        sw      t4, 0(t3)
        addi    t3, t3, -4
        j       2b
3:      sw      t2, 0(t3)
        addi    t0, t0, 1
        j       1b
9:      ret

        .section .rodata
program_name:
        .asciz  "sort"
n_quicksort:    .asciz "quicksort"
n_qs_sum:       .asciz "quicksort keeps the sum"
n_qs_xor:       .asciz "quicksort keeps the xor"
n_qs_order:     .asciz "quicksort order"
n_bsearch:      .asciz "binary search"
n_heapsort:     .asciz "heapsort"
n_hs_sum:       .asciz "heapsort keeps the sum"
n_hs_xor:       .asciz "heapsort keeps the xor"
n_hs_order:     .asciz "heapsort order"
n_insertion:    .asciz "insertion sort"
n_is_order:     .asciz "insertion sort order"
n_is_min:       .asciz "smallest word"
n_is_max:       .asciz "largest word"

        .bss
        .align  3
array:  .space  N * 8
        .equ    words, array
