using System.Globalization;
using RsCapRet.Pipeline;

namespace RsCapRet.Cli.Commands;

/// <summary>
/// Ingestion progress on the command line: a redrawn bar on a terminal (stderr), and the scene's first and last
/// lines on the output, so logs and pipes get the summary without hundreds of bar frames.
/// </summary>
public sealed class ConsoleProgress(TextWriter output, TextWriter? terminal, string indent = "")
{
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private TimeSpan? _lastDraw;   // null: draw the next frame (TimeSpan.MinValue overflowed the subtraction below)
    private bool _barShown;

    /// <summary>stderr when it is a terminal, else null (no bar).</summary>
    public static TextWriter? Terminal(TextWriter error) =>
        ReferenceEquals(error, Console.Error) && !Console.IsErrorRedirected ? error : null;

    /// <summary>Whether a bar is drawn (a terminal); progress frames are wasted otherwise.</summary>
    public bool DrawsBar => terminal is not null;

    public void Report(IngestProgress p)
    {
        if (p.Message is not null)
        {
            Clear();
            if (p.Done == 0) { _clock.Restart(); _lastDraw = null; }   // a new scene: its first frame is drawn at once
            output.WriteLine(indent + p.Message);
            return;
        }
        if (terminal is null || _lastDraw is { } last && (_clock.Elapsed - last).TotalMilliseconds < 200) return;
        _lastDraw = _clock.Elapsed;
        terminal.Write("\r" + Bar(p.Done, p.GridTiles, p.Stored, _clock.Elapsed));
        terminal.Flush();
        _barShown = true;
    }

    /// <summary>Erases the bar, if one is drawn, before other lines are written.</summary>
    public void Clear()
    {
        if (!_barShown || terminal is null) return;
        terminal.Write("\r" + new string(' ', 100) + "\r");
        _barShown = false;
    }

    /// <summary>"[########----------------]  120/400 tiles  30%  52.1 tiles/s  ETA 0:05" (width 24).</summary>
    public static string Bar(int done, int total, int stored, TimeSpan elapsed, int width = 24)
    {
        var fraction = total <= 0 ? 1.0 : Math.Clamp(done / (double)total, 0, 1);
        var filled = (int)Math.Round(fraction * width);
        var rate = elapsed.TotalSeconds > 0 ? stored / elapsed.TotalSeconds : 0;
        var remaining = rate > 0 ? TimeSpan.FromSeconds((total - done) / Math.Max(rate, 1e-9)) : (TimeSpan?)null;
        var eta = remaining is { } r ? $"ETA {(int)r.TotalMinutes}:{r.Seconds:00}" : "ETA ?";
        return string.Create(CultureInfo.InvariantCulture,
            $"[{new string('#', filled)}{new string('-', width - filled)}] {done,5}/{total} tiles {fraction * 100,4:F0}%  {rate:F1} tiles/s  {eta}");
    }
}
