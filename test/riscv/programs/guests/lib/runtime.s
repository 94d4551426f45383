# Shared runtime for the differential guest programs.
#
# The test appends this file to every guest program, so a program is
# `<name>.s` + `lib/runtime.s` assembled as one source. It provides:
#
#   _start      entry (first byte of .text when the program's own code comes
#               after it: the test puts this file FIRST), sets up the stack,
#               prints the start marker, calls `main`, prints the end marker
#               and shuts down with SBI SRST (reason 0 if main returned 0 and
#               no check failed, 1 "system failure" otherwise).
#   putchar, puts, newline, space, print_hex, print_hex32, print_udec,
#   print_dec, print_kv (label=hex), print_kd (label=decimal), hash_init and
#   mix (a 64-bit hash), check (self-check), run_binary_table and
#   run_unary_table (hash an operation over a table of operands).
#
# Every routine follows the standard calling convention (a0-a7, t0-t6 and
# ra are clobbered; s0-s11 and sp are preserved). A program provides `main`
# and a NUL-terminated `program_name` string.
#
# Console: legacy SBI putchar (EID 1), which both OpenSBI 1.1 (QEMU 7.2)
# and faultline implement. Shutdown: SBI SRST (EID "SRST", FID 0).

        .equ    SBI_PUTCHAR, 1
        .equ    SBI_SRST, 0x53525354
        .equ    STACK_SIZE, 0x40000

        .text
        .globl  _start
_start:
        la      sp, __stack_top
        la      t0, __fail_count
        sd      zero, 0(t0)
        la      a0, __msg_begin
        call    puts
        la      a0, program_name
        call    puts
        la      a0, __msg_marker_end
        call    puts
        call    main
        la      t0, __fail_count
        ld      t0, 0(t0)
        or      s0, a0, t0
        snez    s0, s0
        la      a0, __msg_end
        call    puts
        mv      a0, s0
        call    print_udec
        la      a0, __msg_marker_end
        call    puts
        li      a7, SBI_SRST
        li      a6, 0                   # FID 0: system_reset
        li      a0, 0                   # reset type: shutdown
        mv      a1, s0                  # reason: 0 none, 1 system failure
        ecall
__hang:
        wfi
        j       __hang

# putchar(a0 = byte)
        .globl  putchar
putchar:
        li      a7, SBI_PUTCHAR
        ecall
        ret

newline:
        li      a0, '\n'
        j       putchar

space:
        li      a0, ' '
        j       putchar

# puts(a0 = NUL-terminated string), no newline added
puts:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        mv      s0, a0
1:      lbu     a0, 0(s0)
        beqz    a0, 2f
        call    putchar
        addi    s0, s0, 1
        j       1b
2:      ld      ra, 0(sp)
        ld      s0, 8(sp)
        addi    sp, sp, 16
        ret

# print_hex(a0): 16 hex digits
print_hex:
        li      a1, 16
        j       __print_hex_digits

# print_hex32(a0): low 32 bits as 8 hex digits
print_hex32:
        li      a1, 8

# a0 = value, a1 = digit count (from the least significant end)
__print_hex_digits:
        addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        mv      s0, a0
        slli    s1, a1, 2               # bit position above the top digit
1:      addi    s1, s1, -4
        srl     a0, s0, s1
        andi    a0, a0, 15
        la      t0, __hex_digits
        add     t0, t0, a0
        lbu     a0, 0(t0)
        call    putchar
        bnez    s1, 1b
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        addi    sp, sp, 32
        ret

# print_udec(a0): unsigned decimal, using divu/remu by 10
print_udec:
        addi    sp, sp, -48
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        addi    t1, sp, 40              # digits are stored backwards from here
        sb      zero, 0(t1)
        li      t2, 10
1:      remu    t3, a0, t2
        divu    a0, a0, t2
        addi    t3, t3, '0'
        addi    t1, t1, -1
        sb      t3, 0(t1)
        bnez    a0, 1b
        mv      a0, t1
        call    puts
        ld      ra, 0(sp)
        ld      s0, 8(sp)
        addi    sp, sp, 48
        ret

# print_dec(a0): signed decimal
print_dec:
        bgez    a0, print_udec
        addi    sp, sp, -16
        sd      ra, 0(sp)
        sd      a0, 8(sp)
        li      a0, '-'
        call    putchar
        ld      a0, 8(sp)
        neg     a0, a0                  # INT64_MIN stays INT64_MIN: right as unsigned
        call    print_udec
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# print_kv(a0 = label string, a1 = value): "label=<16 hex digits>\n"
print_kv:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        sd      a1, 8(sp)
        call    puts
        li      a0, '='
        call    putchar
        ld      a0, 8(sp)
        call    print_hex
        call    newline
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# print_kd(a0 = label string, a1 = value): "label=<signed decimal>\n"
print_kd:
        addi    sp, sp, -16
        sd      ra, 0(sp)
        sd      a1, 8(sp)
        call    puts
        li      a0, '='
        call    putchar
        ld      a0, 8(sp)
        call    print_dec
        call    newline
        ld      ra, 0(sp)
        addi    sp, sp, 16
        ret

# mix(a0 = hash, a1 = value) -> a0: one FNV-style step over a 64-bit value.
# Leaf routine: touches only a0, a1, t0.
mix:
        xor     a0, a0, a1
        li      t0, 0x100000001b3       # 64-bit FNV prime
        mul     a0, a0, t0
        srli    t0, a0, 29
        xor     a0, a0, t0
        ret

# hash_init() -> a0: the starting value of a hash (FNV offset basis).
hash_init:
        li      a0, 0xcbf29ce484222325
        ret

# check(a0 = got, a1 = expected, a2 = label): prints "FAIL label got=.. want=.."
# and counts a failure when they differ; prints nothing otherwise.
check:
        bne     a0, a1, 1f
        ret
1:      addi    sp, sp, -32
        sd      ra, 0(sp)
        sd      a0, 8(sp)
        sd      a1, 16(sp)
        sd      a2, 24(sp)
        la      t0, __fail_count
        ld      t1, 0(t0)
        addi    t1, t1, 1
        sd      t1, 0(t0)
        la      a0, __msg_fail
        call    puts
        ld      a0, 24(sp)
        call    puts
        la      a0, __msg_got
        call    puts
        ld      a0, 8(sp)
        call    print_hex
        la      a0, __msg_want
        call    puts
        ld      a0, 16(sp)
        call    print_hex
        call    newline
        ld      ra, 0(sp)
        addi    sp, sp, 32
        ret

# run_binary_table(a0 = table, a1 = operands, a2 = operand count)
# The table holds {.dword function, .dword name} entries ending with a zero
# function; a function computes a0 = op(a0, a1) and may clobber a0-a7, t0-t6.
# For every operation prints "name=<hash>", the hash mixing op(x, y) for every
# (x, y) in operands x operands, x outer.
run_binary_table:
        addi    sp, sp, -64
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        sd      s4, 40(sp)
        sd      s5, 48(sp)
        sd      s6, 56(sp)
        mv      s0, a0
        mv      s5, a1
        mv      s6, a2
1:      ld      s1, 0(s0)               # operation
        beqz    s1, 9f
        call    hash_init
        mv      s2, a0
        li      s3, 0                   # i
2:      li      s4, 0                   # j
3:      slli    t1, s3, 3
        add     t1, s5, t1
        ld      a0, 0(t1)
        slli    t1, s4, 3
        add     t1, s5, t1
        ld      a1, 0(t1)
        jalr    s1
        mv      a1, a0
        mv      a0, s2
        call    mix
        mv      s2, a0
        addi    s4, s4, 1
        blt     s4, s6, 3b
        addi    s3, s3, 1
        blt     s3, s6, 2b
        ld      a0, 8(s0)
        mv      a1, s2
        call    print_kv
        addi    s0, s0, 16
        j       1b
9:      ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        ld      s4, 40(sp)
        ld      s5, 48(sp)
        ld      s6, 56(sp)
        addi    sp, sp, 64
        ret

# run_unary_table(a0 = table, a1 = operands, a2 = operand count): as
# run_binary_table with a0 = op(a0) over every operand.
run_unary_table:
        addi    sp, sp, -64
        sd      ra, 0(sp)
        sd      s0, 8(sp)
        sd      s1, 16(sp)
        sd      s2, 24(sp)
        sd      s3, 32(sp)
        sd      s5, 40(sp)
        sd      s6, 48(sp)
        mv      s0, a0
        mv      s5, a1
        mv      s6, a2
1:      ld      s1, 0(s0)
        beqz    s1, 9f
        call    hash_init
        mv      s2, a0
        li      s3, 0
2:      slli    t1, s3, 3
        add     t1, s5, t1
        ld      a0, 0(t1)
        jalr    s1
        mv      a1, a0
        mv      a0, s2
        call    mix
        mv      s2, a0
        addi    s3, s3, 1
        blt     s3, s6, 2b
        ld      a0, 8(s0)
        mv      a1, s2
        call    print_kv
        addi    s0, s0, 16
        j       1b
9:      ld      ra, 0(sp)
        ld      s0, 8(sp)
        ld      s1, 16(sp)
        ld      s2, 24(sp)
        ld      s3, 32(sp)
        ld      s5, 40(sp)
        ld      s6, 48(sp)
        addi    sp, sp, 64
        ret

        .section .rodata
__hex_digits:
        .ascii  "0123456789abcdef"
__msg_begin:
        .asciz  "\n#### faultline guest "
__msg_marker_end:
        .asciz  " ####\n"
__msg_end:
        .asciz  "#### end, exit "
__msg_fail:
        .asciz  "FAIL "
__msg_got:
        .asciz  " got="
__msg_want:
        .asciz  " want="

        .bss
        .align  4
__fail_count:
        .space  8
        .align  4
__stack_bottom:
        .space  STACK_SIZE
__stack_top:
