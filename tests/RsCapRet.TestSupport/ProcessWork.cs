using System.Diagnostics;

namespace RsCapRet.TestSupport;

/// <summary>Waits on what a child process has done rather than on the clock.</summary>
public static class ProcessWork
{
    /// <summary>
    /// Until <paramref name="process"/> has spent <paramref name="work"/> more CPU time than when called: a point in its
    /// work that a loaded machine reaches later, where a fixed wall-clock wait could come before it. Fails when the
    /// process exits first or <paramref name="deadline"/> passes; <paramref name="describe"/> says what it printed.
    /// </summary>
    public static async Task UntilBusyForAsync(Process process, TimeSpan work, TimeSpan deadline, Func<string> describe)
    {
        process.Refresh();
        var target = process.TotalProcessorTime + work;
        var giveUp = DateTime.UtcNow + deadline;
        while (true)
        {
            process.Refresh();
            if (process.HasExited) throw new InvalidOperationException($"the process exited before {work.TotalSeconds:F1} s of work\n{describe()}");
            if (process.TotalProcessorTime >= target) return;
            if (DateTime.UtcNow > giveUp) throw new TimeoutException($"the process did not do {work.TotalSeconds:F1} s of work in {deadline}\n{describe()}");
            await Task.Delay(100);
        }
    }
}
