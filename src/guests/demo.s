# The demo guest: greets from its hart, draws the Mandelbrot set in 16.16
# fixed point, counts primes with a sieve, and shuts down through SBI SRST.
# Built for QEMU's virt machine behind OpenSBI as well as for faultline.

        .equ    COLUMNS, 64
        .equ    ROWS, 24
        .equ    MAX_ITER, 32
        .equ    SIEVE_SIZE, 100000

        .text
        .globl  _start
_start:
        la      sp, stack_top
        mv      s0, a0                  # hart id
        la      a0, msg_hello
        call    puts
        mv      a0, s0
        call    print_decimal
        li      a0, '\n'
        call    putchar
        call    mandelbrot
        la      a0, msg_primes
        call    puts
        call    count_primes
        call    print_decimal
        li      a0, '\n'
        call    putchar
        li      a7, 0x53525354          # SRST: shutdown, no reason
        li      a6, 0
        li      a0, 0
        li      a1, 0
        ecall
1:      wfi
        j       1b

mandelbrot:
        addi    sp, sp, -48
        sd      ra, 0(sp)
        sd      s1, 8(sp)
        sd      s2, 16(sp)
        sd      s3, 24(sp)
        sd      s4, 32(sp)
        li      s1, 0                   # row
        li      s3, -78643              # ci = -1.2
row:    li      s2, 0                   # column
        li      s4, -144179             # cr = -2.2
column: li      t0, 0                   # zr
        li      t1, 0                   # zi
        li      t2, 0                   # iteration
        li      t5, 4 << 16
iterate:
        mul     t3, t0, t0
        srai    t3, t3, 16              # zr^2
        mul     t4, t1, t1
        srai    t4, t4, 16              # zi^2
        add     t6, t3, t4
        bgt     t6, t5, escaped
        mul     t1, t0, t1
        srai    t1, t1, 15              # 2 zr zi
        add     t1, t1, s3
        sub     t0, t3, t4
        add     t0, t0, s4
        addi    t2, t2, 1
        li      t6, MAX_ITER
        blt     t2, t6, iterate
escaped:
        srli    t2, t2, 2
        la      t6, palette
        add     t6, t6, t2
        lbu     a0, 0(t6)
        call    putchar
        li      t6, 3277                # 3.2 / COLUMNS
        add     s4, s4, t6
        addi    s2, s2, 1
        li      t6, COLUMNS
        blt     s2, t6, column
        li      a0, '\n'
        call    putchar
        li      t6, 6554                # 2.4 / ROWS
        add     s3, s3, t6
        addi    s1, s1, 1
        li      t6, ROWS
        blt     s1, t6, row
        ld      ra, 0(sp)
        ld      s1, 8(sp)
        ld      s2, 16(sp)
        ld      s3, 24(sp)
        ld      s4, 32(sp)
        addi    sp, sp, 48
        ret

# Sieve of Eratosthenes; returns the number of primes below SIEVE_SIZE.
count_primes:
        la      t0, sieve
        li      t1, SIEVE_SIZE
        li      a0, 0
        li      t2, 2
1:      add     t3, t0, t2
        lbu     t4, 0(t3)
        bnez    t4, 3f
        addi    a0, a0, 1
        mul     t5, t2, t2
        bge     t5, t1, 3f
2:      add     t3, t0, t5
        li      t4, 1
        sb      t4, 0(t3)
        add     t5, t5, t2
        blt     t5, t1, 2b
3:      addi    t2, t2, 1
        blt     t2, t1, 1b
        ret

# Print the NUL-terminated string at a0.
puts:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        sd      s1, 8(sp)
        mv      s1, a0
1:      lbu     a0, 0(s1)
        beqz    a0, 2f
        call    putchar
        addi    s1, s1, 1
        j       1b
2:      ld      ra, 0(sp)
        ld      s1, 8(sp)
        addi    sp, sp, 16
        ret

# Print a0 as an unsigned decimal number.
print_decimal:
        addi    sp, sp, -48
        sd      ra, 0(sp)
        sd      s1, 8(sp)
        addi    s1, sp, 40              # digits grow down from here
        li      t1, 10
1:      remu    t0, a0, t1
        divu    a0, a0, t1
        addi    t0, t0, '0'
        addi    s1, s1, -1
        sb      t0, 0(s1)
        bnez    a0, 1b
2:      lbu     a0, 0(s1)
        call    putchar
        addi    s1, s1, 1
        addi    t0, sp, 40
        blt     s1, t0, 2b
        ld      ra, 0(sp)
        ld      s1, 8(sp)
        addi    sp, sp, 48
        ret

# Legacy SBI console putchar: works on OpenSBI 1.1 (QEMU 7.2) and faultline.
putchar:
        li      a7, 1
        ecall
        ret

        .section .rodata
msg_hello:
        .asciz  "faultline demo guest: hello from hart "
msg_primes:
        .asciz  "primes below 100000: "
palette:
        .ascii  " .:-=+*%@"

        .bss
        .balign 16
sieve:  .space  SIEVE_SIZE
        .balign 16
        .space  4096
stack_top:
