using RsCapRet.Cli;

namespace RsCapRet.TestSupport;

// Compiled into the test projects that reference the Cli project (linked from their .csproj), not into TestSupport,
// which must not depend on the CLI.

/// <summary>Runs the CLI in this process as a user would call it, with its output and error streams captured.</summary>
internal static class CliRunner
{
    public static async Task<(int Code, string Out, string Err)> Run(params string[] args)
    {
        var (o, e) = (new StringWriter(), new StringWriter());
        var code = await CliApp.RunAsync(args, o, e);
        return (code, o.ToString(), e.ToString());
    }
}
