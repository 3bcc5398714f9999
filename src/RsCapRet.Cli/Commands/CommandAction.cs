using System.CommandLine;
using RsCapRet.Core;

namespace RsCapRet.Cli.Commands;

/// <summary>
/// Runs a command's body and turns the errors users cause (bad paths, bad files, bad input, no database) into one
/// clear line on stderr and exit code 2 — never a stack trace.
/// </summary>
public static class CommandAction
{
    public const int UserError = 2;

    public static void Set(Command command, Func<ParseResult, TextWriter, CancellationToken, Task<int>> body) =>
        command.SetAction(async (parse, ct) =>
        {
            var output = parse.InvocationConfiguration.Output;
            var error = parse.InvocationConfiguration.Error;
            try
            {
                return await body(parse, output, ct);
            }
            catch (Exception e) when (IsUserError(e))
            {
                await error.WriteLineAsync($"error: {ErrorMessages.OneLine(e)}");
                return UserError;
            }
        });

    private static bool IsUserError(Exception e) => e is IOException or InvalidDataException or UnauthorizedAccessException or ArgumentException
        or InvalidOperationException or FormatException or System.Text.Json.JsonException or Npgsql.NpgsqlException
        || e.GetType().Name.EndsWith("Exception", StringComparison.Ordinal) && e.GetType().Namespace?.StartsWith("RsCapRet", StringComparison.Ordinal) == true;
}
