namespace RsCapRet.Cli.Tests;

/// <summary>
/// Command lines that do not parse: one line on stderr naming the option (or `rscapret:` when none is involved),
/// exit code 2, no help text, no .NET type or parameter names.
/// </summary>
public sealed class UsageErrorTests
{
    [Theory]
    [InlineData("db migrate --no-such-option", "--no-such-option: unknown option (see rscapret db migrate --help)")]
    [InlineData("search --limit 5 tanks", "--limit: unknown option (see rscapret search --help)")]
    [InlineData("ingest --fast a.tif", "--fast: unknown option (see rscapret ingest --help)")]
    [InlineData("inspect a.tif --overlap abc", "--overlap: 'abc' is not a whole number")]
    [InlineData("inspect a.tif --gsd ten", "--gsd: 'ten' is not a number")]
    [InlineData("ingest a.tif --batch 0", "--batch: must be 1..1024, got 0")]
    [InlineData("search tanks --k 5000", "--k: must be 1..1000, got 5000")]
    [InlineData("inspect a.tif --bands 4,3", "--bands: must be three band numbers such as 4,3,2, got '4,3'")]
    [InlineData("search tanks --format xml", "--format: 'xml' is not one of: geojson, table")]
    [InlineData("inspect a.tif --overlap", "--overlap: needs a value")]
    [InlineData("score-captions --cands c.json", "--refs: required (JSON object: image id -> list of reference captions)")]
    [InlineData("inspect", "rscapret: inspect needs <path> (see rscapret inspect --help)")]
    [InlineData("nosuchcmd", "rscapret: unknown command 'nosuchcmd' (see rscapret --help)")]
    [InlineData("db nosuch", "rscapret: unknown command 'nosuch' (see rscapret db --help)")]
    [InlineData("db", "rscapret: db needs a command: migrate, status (see rscapret db --help)")]
    [InlineData("inspect a.tif b.tif", "rscapret: unexpected argument 'b.tif' (see rscapret inspect --help)")]
    public async Task EachParseErrorIsOneLineNamingTheOption(string commandLine, string expected)
    {
        var (output, error) = (new StringWriter(), new StringWriter());
        var code = await CliApp.RunAsync(commandLine.Split(' '), output, error);
        Assert.Equal(2, code);
        Assert.Equal("", output.ToString());          // no help text
        Assert.Equal(expected + Environment.NewLine, error.ToString());
    }

    [Fact]
    public async Task ValuesAfterDoubleDashAreNotTakenForOptions()
    {
        // "--limit" after "--" is the query text: the command runs (and fails later, on the unreachable database).
        var error = new StringWriter();
        var code = await CliApp.RunAsync(["search", "--db", "Host=127.0.0.1;Port=1;Database=x;Username=x;Password=x;Timeout=2", "--", "--limit"], new StringWriter(), error);
        Assert.Equal(2, code);
        Assert.DoesNotContain("unknown option", error.ToString());
        Assert.StartsWith("error: ", error.ToString());
    }

    [Fact]
    public void DeveloperDetailsAreCutFromActionErrors() =>
        Assert.Equal("Overlap must be 0..tile size-1. Actual value was 300.",
            RsCapRet.Core.ErrorMessages.OneLine(new ArgumentOutOfRangeException("Overlap", 300, "Overlap must be 0..tile size-1.")));
}
