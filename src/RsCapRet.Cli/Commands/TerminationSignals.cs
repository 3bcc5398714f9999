using System.Runtime.InteropServices;

namespace RsCapRet.Cli.Commands;

/// <summary>
/// Turns the first SIGINT (Ctrl-C) or SIGTERM into a cancellation of <see cref="Token"/>, so a command can release
/// what it holds and say why before it exits; without this the runtime ends the process on the spot (System.CommandLine
/// 2.0.0 does not cancel actions on signals unless ProcessTerminationTimeout is set, and the web host commands keep
/// their own handling). A command that has not stopped within the grace period after the signal is ended with the
/// signal's exit code, and a second signal ends it at once.
/// </summary>
public sealed class TerminationSignals : IDisposable
{
    private readonly TimeSpan _grace;
    private readonly CancellationTokenSource _cancel = new();
    private readonly CancellationTokenSource _disposed = new();
    private readonly PosixSignalRegistration[] _registrations;
    private volatile string? _received;

    public TerminationSignals(TimeSpan grace)
    {
        _grace = grace;
        _registrations = [.. new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM }.Select(s => PosixSignalRegistration.Create(s, OnSignal))];
    }

    /// <summary>Cancelled by the first SIGINT or SIGTERM.</summary>
    public CancellationToken Token => _cancel.Token;

    /// <summary>"cancelled (SIGINT)", "cancelled (SIGTERM)", or "cancelled" when no signal arrived.</summary>
    public string CancelReason => _received is { } s ? $"cancelled ({s})" : "cancelled";

    /// <summary>The conventional exit code of a process stopped by the signal: 128 + its number.</summary>
    public int ExitCode => _received == "SIGTERM" ? 143 : 130;

    private void OnSignal(PosixSignalContext context)
    {
        if (_received is not null) return;   // the second signal: the runtime's default, the process ends now
        _received = context.Signal == PosixSignal.SIGINT ? "SIGINT" : "SIGTERM";
        context.Cancel = true;
        _cancel.Cancel();
        // A model batch cannot be interrupted: do not wait for one longer than the grace period.
        _ = Task.Delay(_grace, _disposed.Token).ContinueWith(t =>
        {
            if (t.IsCanceled) return;
            Console.Error.WriteLine($"error: {CancelReason}: still busy {_grace.TotalSeconds:F0} s later, exiting");
            Console.Out.Flush();
            // _exit, not Environment.Exit: running the runtime's and native libraries' shutdown while torch threads
            // are mid-batch crashes. Nothing is lost: open transactions end with the connections.
            ExitNow(ExitCode);
        }, TaskScheduler.Default);
    }

    [DllImport("libc", EntryPoint = "_exit")]
    private static extern void ExitNow(int status);

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
        _disposed.Cancel();   // the command ended: no forced exit (the token sources hold no timers to free)
    }
}
