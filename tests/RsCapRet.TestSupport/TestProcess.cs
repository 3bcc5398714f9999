using System.Diagnostics;

namespace RsCapRet.TestSupport;

/// <summary>Runs a tool (node, gdalwarp, ogr2ogr) to its end: both output streams read as they come, killed after the timeout.</summary>
public static class TestProcess
{
    public static async Task<(int Code, string Output, string Errors)> RunAsync(string file, IEnumerable<string> args, string? workingDirectory = null,
        TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(120);
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(limit);
        try { await process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            return (-1, await output, $"timed out after {limit.TotalSeconds} s\n" + await errors);
        }
        return (process.ExitCode, await output, await errors);
    }
}
