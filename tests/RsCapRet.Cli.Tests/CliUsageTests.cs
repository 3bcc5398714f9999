using RsCapRet.Cli;
using RsCapRet.Cli.Commands;
using RsCapRet.TestSupport;
using RsCapRet.Web;
using static RsCapRet.TestSupport.CliRunner;

namespace RsCapRet.Cli.Tests;

public class CliUsageTests
{

    [Fact]
    public async Task HelpListsTheCommands()
    {
        var (code, output, _) = await Run("--help");
        Assert.Equal(0, code);
        foreach (var name in CliApp.BuildRoot().Subcommands.Select(c => c.Name))
            Assert.Contains(name, output);
        Assert.Contains("db", output);
    }

    [Fact]
    public async Task UnknownOptionIsAUsageErrorWithoutStackTrace()
    {
        var (code, _, err) = await Run("db", "migrate", "--no-such-option");
        Assert.NotEqual(0, code);
        Assert.Contains("--no-such-option", err);
        Assert.DoesNotContain("   at ", err);
    }

    [Fact]
    public async Task UnreachableDatabaseIsAOneLineError()
    {
        var (code, _, err) = await Run("db", "status", "--db", "Host=127.0.0.1;Port=1;Database=x;Username=x;Password=x;Timeout=2");
        Assert.Equal(2, code);
        Assert.StartsWith("error: ", err);
        Assert.DoesNotContain("   at ", err);
    }
}

public class DashboardCredentialsTests
{
    [Theory]
    [InlineData("http://127.0.0.1:5080", 0)]
    [InlineData("http://localhost:5080;http://[::1]:5080", 0)]
    [InlineData("http://0.0.0.0:8080", 1)]
    [InlineData("http://*:8080,http://127.0.0.1:1", 1)]
    [InlineData("http://192.0.2.10:80", 1)]
    public void NonLoopbackBindingsAreFound(string urls, int count) =>
        Assert.Equal(count, RsCapRet.Web.DashboardCredentials.NonLoopback(urls).Count);

    [Fact]
    public void BasicAuthChecksUserAndPassword()
    {
        var c = new RsCapRet.Web.DashboardCredentials("ops", "s3cret");
        string Header(string s) => "Basic " + Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes(s));
        Assert.True(c.Accepts(Header("ops:s3cret")));
        Assert.False(c.Accepts(Header("ops:wrong")));
        Assert.False(c.Accepts("Basic !!notbase64"));
        Assert.False(c.Accepts(null));
    }

    [Fact]
    public async Task ServeOnAPublicAddressWithoutCredentialsIsRefused()
    {
        if (RsCapRet.Web.DashboardCredentials.FromEnvironment() is not null) return; // the operator configured them
        var err = new StringWriter();
        var code = await CliApp.RunAsync(["serve", "--urls", "http://0.0.0.0:5999", "--db", "Host=127.0.0.1;Port=1;Username=x;Password=x;Database=x"], new StringWriter(), err);
        Assert.Equal(2, code);
        Assert.Contains("RSCAPRET_DASHBOARD_USER", err.ToString());
    }
}

public sealed class ConsoleProgressTests
{
    [Fact]
    public void TheBarShowsTilesDoneRateAndTimeLeft()
    {
        var bar = ConsoleProgress.Bar(done: 100, total: 400, stored: 90, elapsed: TimeSpan.FromSeconds(3), width: 20);
        Assert.StartsWith("[#####---------------]", bar);
        Assert.Contains("100/400 tiles", bar);
        Assert.Contains("25%", bar);
        Assert.Contains("30.0 tiles/s", bar);
        Assert.Contains("ETA 0:10", bar);   // 300 tiles left at 30 tiles/s
        Assert.StartsWith("[####################]", ConsoleProgress.Bar(7, 7, 7, TimeSpan.FromSeconds(1), width: 20));
        Assert.Contains("ETA ?", ConsoleProgress.Bar(0, 10, 0, TimeSpan.Zero));
    }

    [Fact]
    public void WithoutATerminalOnlyTheSceneLinesAreWritten()
    {
        var output = new StringWriter();
        var progress = new ConsoleProgress(output, terminal: null);
        progress.Report(new Pipeline.IngestProgress("a.tif", 0, 0, 4, "a.tif: 2x2 tiles"));
        progress.Report(new Pipeline.IngestProgress("a.tif", 2, 1, 4));
        progress.Report(new Pipeline.IngestProgress("a.tif", 3, 1, 4, "a.tif: 3 tiles stored"));
        Assert.Equal(["a.tif: 2x2 tiles", "a.tif: 3 tiles stored"], output.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void OnATerminalEachScenesBarIsDrawnAndClearedBeforeItsLines()
    {
        var (output, terminal) = (new StringWriter(), new StringWriter());
        var progress = new ConsoleProgress(output, terminal);
        progress.Report(new Pipeline.IngestProgress("a.tif", 0, 0, 4, "a.tif: 2x2 tiles"));
        progress.Report(new Pipeline.IngestProgress("a.tif", 2, 1, 4));
        Assert.Contains("3/4 tiles", terminal.ToString());
        progress.Report(new Pipeline.IngestProgress("a.tif", 3, 1, 4, "a.tif: 3 tiles stored"));
        Assert.EndsWith("\r", terminal.ToString());   // the bar was erased before the scene's last line
        // The next scene's first frame is drawn at once, however recently the last scene's was.
        progress.Report(new Pipeline.IngestProgress("b.tif", 0, 0, 9, "b.tif: 3x3 tiles"));
        progress.Report(new Pipeline.IngestProgress("b.tif", 1, 0, 9));
        Assert.Contains("1/9 tiles", terminal.ToString());
        Assert.Equal(["a.tif: 2x2 tiles", "a.tif: 3 tiles stored", "b.tif: 3x3 tiles"],
            output.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries));
    }
}
