using System.CommandLine;
using System.Globalization;

namespace RsCapRet.Cli.Commands;

/// <summary>
/// Value rules checked while the command line is parsed, so a bad value is a usage error (`--batch: must be
/// 1..1024, got 0`, see <see cref="UsageErrors"/>) before any work starts. Values that do not even convert are left
/// to the parser, which reports them itself.
/// </summary>
public static class OptionChecks
{
    public static Option<T> Must<T>(this Option<T> option, Func<T, bool> ok, string rule) where T : IParsable<T>
    {
        Add(option, ok, rule);
        return option;
    }

    public static Option<T?> Must<T>(this Option<T?> option, Func<T, bool> ok, string rule) where T : struct, IParsable<T>
    {
        Add(option, ok, rule);
        return option;
    }

    public static Option<int> InRange(this Option<int> option, int min, int max) => option.Must(v => v >= min && v <= max, $"must be {min}..{max}");
    public static Option<int?> InRange(this Option<int?> option, int min, int max) => option.Must<int>(v => v >= min && v <= max, $"must be {min}..{max}");

    private static void Add<T>(Option option, Func<T, bool> ok, string rule) where T : IParsable<T> =>
        option.Validators.Add(result =>
        {
            foreach (var token in result.Tokens)
                if (T.TryParse(token.Value, CultureInfo.InvariantCulture, out var value) && !ok(value))
                    result.AddError($"{rule}, got {token.Value}");
        });
}
