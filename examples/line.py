"""The original user guide's first example ("Storing plots on the server"), with only its
import line changed."""

from bokehsite.client import figure, output_server, show

output_server("line") # THIS LINE HAS CHANGED!

p = figure(plot_width=400, plot_height=400)

# add a line renderer
p.line([1, 2, 3, 4, 5], [6, 7, 2, 4, 5], line_width=2)

show(p)
