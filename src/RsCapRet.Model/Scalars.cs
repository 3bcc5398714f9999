using System.Collections.Concurrent;
using TorchSharp;

namespace RsCapRet.Model;

/// <summary>
/// Process-lifetime TorchSharp scalars for the constants of per-batch tensor arithmetic. TorchSharp hands
/// <c>scalar.Handle</c> to native code without keeping the <see cref="Scalar"/> alive, so the temporary of an
/// implicit conversion (<c>x * 0.5</c>, <c>x.pow(2)</c>) can be finalised by the GC while libtorch still reads it.
/// That crashed a 46-epoch training run after ~1,200 steps ("INTERNAL ASSERT FAILED at c10/core/Scalar.h" in pow).
/// Cached scalars stay reachable, so they are never finalised.
/// </summary>
public static class Scalars
{
    private static readonly ConcurrentDictionary<double, Scalar> Doubles = new();
    private static readonly ConcurrentDictionary<long, Scalar> Longs = new();

    /// <summary>A float64 scalar (promotes like a Python float: the tensor keeps its floating dtype).</summary>
    public static Scalar Of(double value) => Doubles.GetOrAdd(value, v => v.ToScalar());

    /// <summary>An int64 scalar (keeps integer tensors integer).</summary>
    public static Scalar Of(long value) => Longs.GetOrAdd(value, v => v.ToScalar());
}
