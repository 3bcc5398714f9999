using System.Diagnostics;
using Xunit;

namespace RsCapRet.TestSupport;

/// <summary>Checks that work honours its cancellation token part way through, robust to a loaded machine.</summary>
public static class CancellationChecks
{
    /// <summary>
    /// A read cancelled a tenth of the way through stops well before the whole read would. Each attempt times the whole
    /// read and a cancelled one back to back; a loaded machine can slow either or stall the timer that cancels, so any
    /// of five attempts showing the early stop passes, while a read that ignores its token never does.
    /// </summary>
    public static void AssertStopsEarly(string what, Action<CancellationToken> read, Action<string>? log = null)
    {
        var attempts = new List<string>();
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var sw = Stopwatch.StartNew();
            read(CancellationToken.None);
            var full = sw.Elapsed;
            using var cts = new CancellationTokenSource(TimeSpan.FromTicks(full.Ticks / 10));
            sw.Restart();
            // A read that ends before the timer fires (a warm cache, a stalled timer thread) shows nothing: try again.
            var cancelled = false;
            try { read(cts.Token); }
            catch (OperationCanceledException) { cancelled = true; }
            var stopped = sw.Elapsed;
            attempts.Add($"whole {full.TotalMilliseconds:F0} ms, cancelled after {full.TotalMilliseconds / 10:F0} ms: " +
                (cancelled ? $"stopped at {stopped.TotalMilliseconds:F0} ms" : $"finished at {stopped.TotalMilliseconds:F0} ms without stopping"));
            log?.Invoke($"{what}: {attempts[^1]}");
            if (cancelled && stopped < full * 0.6) return;
        }
        Assert.Fail($"{what}: the cancelled read never stopped before 60 % of the whole read's time ({string.Join("; ", attempts)})");
    }
}
