//! The <math.h> functions the exported C may call that zig's compiler_rt does not export
//! (compiler_rt has expf and exp), taken from Zig's standard library for a freestanding image.
const std = @import("std");

export fn tanhf(x: f32) f32 {
    return std.math.tanh(x);
}

export fn tanh(x: f64) f64 {
    return std.math.tanh(x);
}
