/* Start-up code of the bare-metal images built with the zig toolchain (retrainer[mcu]):
   the vector table's first two words, then the FPU switched on, .data copied from flash,
   .bss zeroed, and main called. No C library is needed. */
#include <stdint.h>

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
int main(void);
void reset_handler(void);

__attribute__((section(".vectors"), used))
static const void *const vectors[2] = {&__stack_top, reset_handler};

#define CPACR (*(volatile uint32_t *)0xE000ED88u)

void reset_handler(void)
{
#if defined(__ARM_FP)
    CPACR |= 0xFu << 20; /* full access to CP10 and CP11, the FPU */
    __asm__ volatile("dsb\n isb");
#endif
    const uint32_t *from = &__data_load;
    for (uint32_t *p = &__data_start; p < &__data_end; p++) {
        *p = *from++;
    }
    for (uint32_t *p = &__bss_start; p < &__bss_end; p++) {
        *p = 0;
    }
    (void)main();
    for (;;) {
    }
}
