using RsCapRet.Cli;

namespace RsCapRet.Cli.Tests;

public class CliUsageTests
{
    private static async Task<(int Code, string Out, string Err)> Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var code = await CliApp.RunAsync(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

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
