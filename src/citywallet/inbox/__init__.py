"""The message centre: notices written with the business events that raise them.

A feature that wants to tell a resident something (a red packet arrived, a split asks for a
share, a campaign drew them, a charge waits for confirmation, a new device signed in, a
charge was refused) calls :func:`citywallet.inbox.service.record` inside the transaction
of that event: the notice exists exactly when the event committed. Once it has committed,
the resident's open pages are woken (:mod:`citywallet.inbox.bell`) and the server-sent
event stream tells them at once. The package sits below the features (it knows none of
them): a notice names its object by kind and public id, and :mod:`.links` turns that
into the page to open.
"""
